//! The compiled combos: every target resolved (through aliases and nested combos) to a
//! provider and model, with one shared health state per target.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::failure::FallbackPolicy;
use super::health::TargetState;
use std::collections::BTreeMap;

use super::settings::{CircuitBreakerSettings, ComboSettings, ComboStrategy};
use crate::alias::Aliases;
use crate::executor::Target;
use crate::settings::SettingsError;

/// How deep combos may nest (a combo whose target is a combo is depth 2).
const MAX_NESTING: usize = 4;
/// Default cap on attempts per request when a combo sets no `max_attempts`.
const DEFAULT_MAX_ATTEMPTS: usize = 10;

/// Every combo by name.
#[derive(Debug, Default)]
pub struct Combos {
    by_name: HashMap<Box<str>, Arc<ComboPlan>>,
    /// The breaker every target was set up with.
    breaker: CircuitBreakerSettings,
}

/// The targets' health (breakers, latency, in-flight and per-minute counts) of built
/// combos, carried into the combos of a changed config so that a reload forgets nothing
/// about a target that stayed the same.
#[derive(Debug, Default, Clone)]
pub struct TargetHealth {
    breaker: CircuitBreakerSettings,
    by_target: HashMap<String, Arc<TargetState>>,
}

/// A combo target's circuit breaker, for the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetBreaker {
    /// `provider/model`.
    pub target: String,
    /// Its provider.
    pub provider: String,
    /// `closed` (serving), `open` (cooling down) or `half-open` (one probe out).
    pub state: &'static str,
}

impl TargetHealth {
    /// Each target (`provider/model`) with its provider and breaker state, sorted.
    pub fn breakers(&self) -> Vec<TargetBreaker> {
        let mut out: Vec<TargetBreaker> = self
            .by_target
            .values()
            .map(|state| TargetBreaker {
                target: state.label.to_string(),
                provider: state.target.provider.to_string(),
                state: state.breaker_state(),
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Forgets the targets of providers `keep` says no to (re-pointed or removed ones).
    pub fn retain_providers(&mut self, keep: impl Fn(&str) -> bool) {
        self.by_target
            .retain(|_, state| keep(&state.target.provider));
    }
}

/// One combo, ready to plan attempts.
#[derive(Debug)]
pub(crate) struct ComboPlan {
    pub(crate) name: Arc<str>,
    strategy: ComboStrategy,
    members: Vec<Member>,
    pub(crate) context_window_fallbacks: Vec<Arc<TargetState>>,
    pub(crate) policy: FallbackPolicy,
    pub(crate) max_attempts: usize,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    /// Requests for which every attempt failed.
    pub(crate) exhausted: metrics::Counter,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Member {
    node: Node,
    weight: u32,
}

#[derive(Debug)]
enum Node {
    Target(Arc<TargetState>),
    Combo(Arc<ComboPlan>),
}

impl Combos {
    /// Compiles `combos`, resolving each target through `aliases` to another combo or to
    /// `provider/model` with a provider that `provider` says is registered; every target
    /// shares one circuit breaker state set up by `breaker`. Unknown targets, cycles and
    /// nesting deeper than 4 are errors naming the combo (`NAME.targets.I`) and the chain.
    pub fn new(
        combos: &BTreeMap<String, ComboSettings>,
        aliases: &Aliases,
        provider: &dyn Fn(&str) -> bool,
        breaker: &CircuitBreakerSettings,
    ) -> Result<Self, SettingsError> {
        Self::carrying(combos, aliases, provider, breaker, TargetHealth::default())
    }

    /// [`Combos::new`], each target that `health` knows keeping its state (when the
    /// breaker settings are the same; its rpm/tpm limits are the new config's).
    pub fn carrying(
        combos: &BTreeMap<String, ComboSettings>,
        aliases: &Aliases,
        provider: &dyn Fn(&str) -> bool,
        breaker: &CircuitBreakerSettings,
        mut health: TargetHealth,
    ) -> Result<Self, SettingsError> {
        breaker.validate()?;
        if health.breaker != *breaker {
            health.by_target.clear();
        }
        let mut compiler = Compiler {
            combos,
            provider,
            breaker,
            aliases,
            carried: health.by_target,
            targets: HashMap::new(),
            done: HashMap::new(),
        };
        for name in combos.keys() {
            compiler.combo(name, &mut Vec::new())?;
        }
        Ok(Self {
            by_name: compiler
                .done
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            breaker: breaker.clone(),
        })
    }

    /// Every target's state, to carry into [`Combos::carrying`].
    pub fn health(&self) -> TargetHealth {
        let mut by_target = HashMap::new();
        for plan in self.by_name.values() {
            let mut leaves = Vec::new();
            for member in &plan.members {
                member.node.leaves(&mut leaves);
            }
            leaves.extend(plan.context_window_fallbacks.iter().cloned());
            for leaf in leaves {
                by_target.insert(leaf.label.to_string(), leaf);
            }
        }
        TargetHealth {
            breaker: self.breaker.clone(),
            by_target,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<ComboPlan>> {
        self.by_name.get(name)
    }

    /// The combo names, for `GET /v1/models`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|k| &**k)
    }

    /// Whether there are no combos.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

struct Compiler<'a> {
    combos: &'a BTreeMap<String, ComboSettings>,
    provider: &'a dyn Fn(&str) -> bool,
    breaker: &'a CircuitBreakerSettings,
    aliases: &'a Aliases,
    /// States of the previous config's targets, taken as their targets come up.
    carried: HashMap<String, Arc<TargetState>>,
    targets: HashMap<String, Arc<TargetState>>,
    done: HashMap<String, Arc<ComboPlan>>,
}

impl Compiler<'_> {
    fn combo(
        &mut self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<Arc<ComboPlan>, SettingsError> {
        if let Some(done) = self.done.get(name) {
            return Ok(done.clone());
        }
        if chain.iter().any(|c| c == name) {
            chain.push(name.to_owned());
            return Err(SettingsError::new(
                chain[0].as_str(),
                format!("combos contain each other: {}", chain.join(" → ")),
            ));
        }
        chain.push(name.to_owned());
        if chain.len() > MAX_NESTING {
            return Err(SettingsError::new(
                chain[0].as_str(),
                format!(
                    "combos nest deeper than {MAX_NESTING}: {}",
                    chain.join(" → ")
                ),
            ));
        }
        let config = &self.combos[name];
        if config.targets.is_empty() {
            return Err(SettingsError::new(
                format!("{name}.targets"),
                "at least one target is required",
            ));
        }
        let mut members = Vec::with_capacity(config.targets.len());
        for (i, target) in config.targets.iter().enumerate() {
            let field = format!("{name}.targets.{i}");
            let node = self.node(target.name(), &field, chain)?;
            let (rpm, tpm) = target.limits();
            if rpm.is_some() || tpm.is_some() || config.strategy == ComboStrategy::LeastUsage {
                let mut leaves = Vec::new();
                node.leaves(&mut leaves);
                for leaf in leaves {
                    leaf.limit(rpm, tpm);
                    leaf.count();
                }
            }
            members.push(Member {
                node,
                weight: target.weight(),
            });
        }
        if config.strategy == ComboStrategy::Weighted && members.iter().all(|m| m.weight == 0) {
            return Err(SettingsError::new(
                format!("{name}.targets"),
                "every weight is 0",
            ));
        }
        let mut context_window_fallbacks = Vec::new();
        for (i, target) in config.context_window_fallbacks.iter().enumerate() {
            let field = format!("{name}.context_window_fallbacks.{i}");
            self.node(target, &field, chain)?
                .leaves(&mut context_window_fallbacks);
        }
        let leaves = {
            let mut out = Vec::new();
            for m in &members {
                m.node.leaves(&mut out);
            }
            out.len()
        };
        let max_attempts = match config.max_attempts {
            Some(0) => {
                return Err(SettingsError::new(
                    format!("{name}.max_attempts"),
                    "must be at least 1",
                ))
            }
            Some(n) => n,
            None => (leaves + context_window_fallbacks.len()).min(DEFAULT_MAX_ATTEMPTS),
        };
        chain.pop();
        let plan = Arc::new(ComboPlan {
            name: name.into(),
            strategy: config.strategy,
            members,
            context_window_fallbacks,
            policy: FallbackPolicy::new(config.fallback_on.as_deref()),
            max_attempts,
            attempt_timeout: config.attempt_timeout,
            deadline: config.deadline,
            exhausted: metrics::counter!("llm_tower_combo_exhausted_total", "combo" => name.to_owned()),
            next: AtomicUsize::new(0),
        });
        self.done.insert(name.to_owned(), plan.clone());
        Ok(plan)
    }

    fn node(
        &mut self,
        name: &str,
        field: &str,
        chain: &mut Vec<String>,
    ) -> Result<Node, SettingsError> {
        let resolved = self.aliases.resolve(name);
        let name = resolved.as_deref().unwrap_or(name);
        if self.combos.contains_key(name) {
            return Ok(Node::Combo(self.combo(name, chain)?));
        }
        match name.split_once('/') {
            Some((provider, model)) if !model.is_empty() && (self.provider)(provider) => {
                let carried = &mut self.carried;
                let breaker = self.breaker;
                let state = self.targets.entry(name.to_owned()).or_insert_with(|| {
                    match carried.remove(name) {
                        Some(state) => {
                            state.unlimit();
                            state
                        }
                        None => Arc::new(TargetState::new(
                            Target { provider: provider.into(), model: model.into() },
                            breaker,
                        )),
                    }
                });
                Ok(Node::Target(state.clone()))
            }
            _ => Err(SettingsError::new(
                field,
                format!("`{name}` is not `provider/model` with a configured provider, an alias or a combo"),
            )),
        }
    }
}

impl Node {
    /// Every target below this node, in listed order, without repeats.
    fn leaves(&self, out: &mut Vec<Arc<TargetState>>) {
        match self {
            Self::Target(t) => push_new(out, t),
            Self::Combo(c) => {
                for m in &c.members {
                    m.node.leaves(out);
                }
            }
        }
    }

    fn load(&self) -> f64 {
        match self {
            Self::Target(t) => t.load(),
            Self::Combo(c) => c
                .members
                .iter()
                .map(|m| m.node.load())
                .fold(f64::INFINITY, f64::min),
        }
    }

    fn tokens_this_minute(&self) -> u64 {
        self.least(&TargetState::tokens_this_minute)
    }

    fn in_flight(&self) -> usize {
        self.least(&TargetState::in_flight)
    }

    /// `of` the target, or the least `of` any target below a combo (0 for none).
    fn least<T: Ord + Default>(&self, of: &dyn Fn(&TargetState) -> T) -> T {
        match self {
            Self::Target(t) => of(t),
            Self::Combo(c) => c
                .members
                .iter()
                .map(|m| m.node.least(of))
                .min()
                .unwrap_or_default(),
        }
    }
}

fn push_new(out: &mut Vec<Arc<TargetState>>, target: &Arc<TargetState>) {
    if !out.iter().any(|t| Arc::ptr_eq(t, target)) {
        out.push(target.clone());
    }
}

impl ComboPlan {
    /// The targets of one request in the order they are tried: the strategy's choice
    /// first, then the rest as fallbacks. Nested combos plan their own part.
    pub(crate) fn plan(&self, out: &mut Vec<Arc<TargetState>>) {
        let mut add = |member: &Member| match &member.node {
            Node::Target(t) => push_new(out, t),
            Node::Combo(c) => c.plan(out),
        };
        if self.strategy == ComboStrategy::Priority {
            self.members.iter().for_each(add);
        } else {
            self.order().into_iter().for_each(|i| add(&self.members[i]));
        }
    }

    /// Member indices in the strategy's order.
    fn order(&self) -> Vec<usize> {
        let n = self.members.len();
        let mut order: Vec<usize> = (0..n).collect();
        match self.strategy {
            ComboStrategy::Priority => {} // listed order
            ComboStrategy::RoundRobin => {
                order.rotate_left(self.next.fetch_add(1, Ordering::Relaxed) % n);
            }
            ComboStrategy::Weighted => {
                // Draws without replacement, each in proportion to its weight.
                let mut remaining: u64 = self.members.iter().map(|m| u64::from(m.weight)).sum();
                for slot in 0..n {
                    if remaining == 0 {
                        break;
                    }
                    let mut pick = fastrand::u64(0..remaining);
                    let chosen = (slot..n)
                        .find(|&j| {
                            let w = u64::from(self.members[order[j]].weight);
                            if pick < w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .expect("weights add up");
                    remaining -= u64::from(self.members[order[chosen]].weight);
                    order.swap(slot, chosen);
                }
            }
            ComboStrategy::LeastLatency => {
                let loads: Vec<f64> = self.members.iter().map(|m| m.node.load()).collect();
                order.sort_by(|&a, &b| loads[a].total_cmp(&loads[b]));
                if n > 1 {
                    // Power of two choices: the first is the better of two random members,
                    // so equal or unknown loads still spread.
                    let a = fastrand::usize(0..n);
                    let b = (a + 1 + fastrand::usize(0..n - 1)) % n;
                    let first = if loads[b] < loads[a] { b } else { a };
                    let at = order.iter().position(|&i| i == first).expect("present");
                    order[..=at].rotate_right(1);
                }
            }
            ComboStrategy::LeastBusy => {
                fastrand::shuffle(&mut order); // ties go to a random member
                order.sort_by_key(|&i| self.members[i].node.in_flight());
            }
            ComboStrategy::LeastUsage => {
                fastrand::shuffle(&mut order);
                order.sort_by_key(|&i| self.members[i].node.tokens_this_minute());
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `aliases:` and `combos:` in YAML, over providers `a`, `b` and `c`.
    fn combos(yaml: &str) -> Result<Combos, SettingsError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(default)]
            aliases: BTreeMap<String, String>,
            #[serde(default)]
            combos: BTreeMap<String, ComboSettings>,
        }
        let doc: Doc =
            serde_yaml_ng::from_str(yaml).map_err(|e| SettingsError::new("", e.to_string()))?;
        let provider = |p: &str| ["a", "b", "c"].contains(&p);
        let names = crate::alias::Names {
            provider: &provider,
            combo: &|c| doc.combos.contains_key(c),
        };
        let aliases = Aliases::new(&doc.aliases, &names)?;
        Combos::new(
            &doc.combos,
            &aliases,
            &provider,
            &CircuitBreakerSettings::default(),
        )
        .map_err(|e| e.within("combos"))
    }

    fn labels(c: &Combos, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        c.get(name).unwrap().plan(&mut out);
        out.iter().map(|t| t.label.to_string()).collect()
    }

    #[test]
    fn priority_keeps_the_listed_order_and_nested_combos_expand_in_place() {
        let c = combos(
            "aliases: { fast: a/x }\ncombos:\n  inner: { targets: [b/y, c/z] }\n  outer: { targets: [fast, inner, a/x] }",
        )
        .unwrap();
        assert_eq!(labels(&c, "outer"), ["a/x", "b/y", "c/z"]);
    }

    #[test]
    fn round_robin_starts_at_the_next_target_each_time() {
        let c =
            combos("combos: { rr: { strategy: round-robin, targets: [a/1, b/2, c/3] } }").unwrap();
        let firsts: Vec<String> = (0..6).map(|_| labels(&c, "rr")[0].clone()).collect();
        assert_eq!(firsts, ["a/1", "b/2", "c/3", "a/1", "b/2", "c/3"]);
        assert_eq!(labels(&c, "rr"), ["a/1", "b/2", "c/3"]);
    }

    #[test]
    fn weighted_shares_follow_the_weights_within_two_percent() {
        let c = combos(
            "combos: { w: { strategy: weighted, targets: [{ target: a/1, weight: 6 }, { target: b/2, weight: 3 }, { target: c/3, weight: 1 }, { target: c/4, weight: 0 }] } }",
        )
        .unwrap();
        let draws = 20_000;
        let mut counts = HashMap::<String, usize>::new();
        for _ in 0..draws {
            let plan = labels(&c, "w");
            assert_eq!(plan.len(), 4, "every target stays a fallback");
            assert_eq!(plan[3], "c/4", "weight 0 only as the last fallback");
            *counts.entry(plan[0].clone()).or_default() += 1;
        }
        for (label, share) in [("a/1", 0.6), ("b/2", 0.3), ("c/3", 0.1)] {
            let got = counts[label] as f64 / draws as f64;
            assert!((got - share).abs() < 0.02, "{label}: {got} vs {share}");
        }
    }

    #[test]
    fn least_latency_prefers_the_faster_target() {
        let c = combos("combos: { ll: { strategy: least-latency, targets: [a/slow, b/fast] } }")
            .unwrap();
        let plan = c.get("ll").unwrap();
        let slow = &plan.members[0];
        let Node::Target(slow) = &slow.node else {
            panic!()
        };
        slow.observe_latency(Duration::from_millis(500));
        let Node::Target(fast) = &plan.members[1].node else {
            panic!()
        };
        fast.observe_latency(Duration::from_millis(50));
        for _ in 0..50 {
            assert_eq!(labels(&c, "ll"), ["b/fast", "a/slow"]);
        }
    }

    #[test]
    fn least_busy_prefers_the_fewest_in_flight() {
        let c =
            combos("combos: { lb: { strategy: least-busy, targets: [a/1, b/2, c/3] } }").unwrap();
        let plan = c.get("lb").unwrap();
        let state = |i: usize| match &plan.members[i].node {
            Node::Target(t) => t.clone(),
            Node::Combo(_) => unreachable!(),
        };
        let _busy = [
            super::super::health::InFlight::start(&state(0)),
            super::super::health::InFlight::start(&state(0)),
            super::super::health::InFlight::start(&state(2)),
        ];
        for _ in 0..20 {
            assert_eq!(labels(&c, "lb"), ["b/2", "c/3", "a/1"]);
        }
    }

    #[test]
    fn bad_combos_are_errors_naming_the_chain() {
        let err = combos("combos: { x: { targets: [y] }, y: { targets: [x] } }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x → y → x"), "{err}");
        let err = combos("combos: { x: { targets: [a/1, nowhere/2] } }")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("combos.x.targets.1") && err.contains("`nowhere/2`"),
            "{err}"
        );
        let err = combos("combos: { x: { targets: [] } }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one"), "{err}");
        let err = combos(
            "combos: { c1: { targets: [c2] }, c2: { targets: [c3] }, c3: { targets: [c4] }, c4: { targets: [c5] }, c5: { targets: [a/1] } }",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("deeper than 4"), "{err}");
        let err = combos("combos: { x: { targets: [a/1], fallback_on: [teapot] } }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a failure kind"), "{err}");
    }
}
