//! Inputs for the fuzz targets: recorded wire data and configs, mutated.

use super::Seeds;

/// Makes inputs: a seed from the corpus, changed by a few random edits.
pub struct Mutator {
    rng: fastrand::Rng,
    json: Vec<Vec<u8>>,
    streams: Vec<Vec<u8>>,
    yaml: Vec<Vec<u8>>,
}

/// Bytes that matter to the parsers, for inserted and replaced bytes.
const INTERESTING: &[u8] = b"{}[]\":,\\\n\r -0123456789eE.tfnu:#&*!|>'";

/// Strings that matter, spliced in whole.
const TOKENS: &[&[u8]] = &[
    b"data: ",
    b"event: ",
    b"\n\n",
    b"[DONE]",
    b"null",
    b"true",
    b"\"\\ud800\"",
    b"1e999",
    b"-0",
    b"\"type\"",
    b"\"content\"",
    b"\"tool_calls\"",
    b"\"choices\":[]",
    b"{\"type\":\"message_stop\"}",
    b"\xff\xfe",
    b"\xe2\x82",
    b"providers:",
];

impl Mutator {
    /// Seeded, over the files under `fixtures` (`*.json` bodies, `*.sse`/`*.txt`/`*.http`
    /// streams, searched recursively) and the `yaml` configs.
    pub fn new(seed: u64, fixtures: &std::path::Path, yaml: &[std::path::PathBuf]) -> Self {
        let mut json = Vec::new();
        let mut streams = Vec::new();
        let mut stack = vec![fixtures.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if bytes.windows(6).any(|w| w == b"data: ") {
                    streams.push(bytes);
                } else if path.extension().is_some_and(|e| e == "json") {
                    json.push(bytes);
                }
            }
        }
        // Recorded streams may be kept inside JSON (`{"body": "data: …"}`): take those out.
        for j in &json {
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(j) {
                for value in map.values() {
                    if let Some(text) = value.as_str().filter(|t| t.contains("data: ")) {
                        streams.push(text.as_bytes().to_vec());
                    }
                }
            }
        }
        json.push(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.to_vec());
        streams.push(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n".to_vec(),
        );
        let yaml = yaml.iter().filter_map(|p| std::fs::read(p).ok()).collect();
        Self {
            rng: fastrand::Rng::with_seed(seed),
            json,
            streams,
            yaml,
        }
    }

    /// How many seeds of each kind it has (JSON, streams, YAML).
    pub fn corpus_sizes(&self) -> (usize, usize, usize) {
        (self.json.len(), self.streams.len(), self.yaml.len())
    }

    pub(crate) fn next(&mut self, seeds: Seeds) -> Vec<u8> {
        let corpus = match seeds {
            Seeds::Json => &self.json,
            Seeds::Streams => &self.streams,
            Seeds::Yaml => &self.yaml,
        };
        let mut input = corpus[self.rng.usize(..corpus.len())].clone();
        let other = corpus[self.rng.usize(..corpus.len())].clone();
        // Sometimes the seed as it is: the recorded input must pass too.
        let edits = if self.rng.u8(..8) == 0 {
            0
        } else {
            self.rng.usize(1..8)
        };
        for _ in 0..edits {
            self.edit(&mut input, &other);
        }
        input
    }

    fn edit(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        let rng = &mut self.rng;
        let at = rng.usize(..=input.len());
        match rng.u8(..8) {
            0 if at < input.len() => input[at] ^= 1 << rng.u8(..8),
            1 if at < input.len() => input[at] = INTERESTING[rng.usize(..INTERESTING.len())],
            2 => input.insert(at, INTERESTING[rng.usize(..INTERESTING.len())]),
            3 if at < input.len() => {
                let end = (at + rng.usize(1..32)).min(input.len());
                input.drain(at..end);
            }
            4 if at < input.len() => {
                // Repeat a range (deep nesting, long strings).
                let end = (at + rng.usize(1..64)).min(input.len());
                let piece = input[at..end].to_vec();
                for _ in 0..rng.usize(1..16) {
                    input.splice(at..at, piece.iter().copied());
                }
            }
            5 => {
                let token = TOKENS[rng.usize(..TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            6 if !other.is_empty() => {
                // Splice a piece of another seed.
                let from = rng.usize(..other.len());
                let end = (from + rng.usize(1..128)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ => input.truncate(at),
        }
    }

    pub(crate) fn split_points(&mut self, len: usize) -> Vec<usize> {
        let mut points: Vec<usize> = (0..self.rng.usize(0..8))
            .map(|_| self.rng.usize(..=len))
            .collect();
        points.sort_unstable();
        points
    }
}
