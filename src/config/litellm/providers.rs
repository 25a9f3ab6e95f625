//! LiteLLM's provider prefixes (`litellm_params.model: PREFIX/model`) that llm-tower
//! serves natively: the executor kind, where LiteLLM sends them by default, and the
//! variables it reads the key and the base URL from (LiteLLM 1.108's
//! `get_llm_provider_logic.py` and `llms/*/transformation.py`).

/// How a prefix is served natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Native {
    /// An OpenAI-compatible server: `POST {api_base}/chat/completions`.
    OpenAi,
    /// Azure OpenAI.
    Azure,
    /// The Anthropic Messages API.
    Anthropic,
    /// The Gemini API.
    Gemini,
    /// Ollama, through its OpenAI-compatible API under `/v1`.
    Ollama,
    /// Another LiteLLM proxy (`litellm_proxy/`).
    LiteLlmProxy,
}

/// A prefix llm-tower serves natively.
#[derive(Debug)]
pub(super) struct Known {
    pub(super) prefix: &'static str,
    pub(super) native: Native,
    /// The base LiteLLM uses without an `api_base` (none: `api_base` is required).
    pub(super) api_base: Option<&'static str>,
    /// Variables the key is read from, first set wins.
    pub(super) key_env: &'static [&'static str],
    /// Variables the base URL is read from before the default.
    pub(super) base_env: &'static [&'static str],
    /// The key LiteLLM sends when none is set (local servers).
    pub(super) fallback_key: Option<&'static str>,
}

const fn known(
    prefix: &'static str,
    native: Native,
    api_base: Option<&'static str>,
    key_env: &'static [&'static str],
    base_env: &'static [&'static str],
) -> Known {
    Known {
        prefix,
        native,
        api_base,
        key_env,
        base_env,
        fallback_key: None,
    }
}

use Native::*;

/// Every natively served prefix.
pub(super) const KNOWN: &[Known] = &[
    known(
        "openai",
        OpenAi,
        Some("https://api.openai.com/v1"),
        &["OPENAI_API_KEY"],
        &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
    ),
    known(
        "azure",
        Azure,
        None,
        &["AZURE_OPENAI_API_KEY", "AZURE_API_KEY"],
        &["AZURE_API_BASE"],
    ),
    known(
        "anthropic",
        Anthropic,
        Some("https://api.anthropic.com"),
        &["ANTHROPIC_API_KEY"],
        &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"],
    ),
    known(
        "gemini",
        Gemini,
        Some("https://generativelanguage.googleapis.com/v1beta"),
        &["GOOGLE_API_KEY", "GEMINI_API_KEY", "PALM_API_KEY"],
        &["GEMINI_API_BASE"],
    ),
    known(
        "ollama",
        Ollama,
        Some("http://localhost:11434"),
        &["OLLAMA_API_KEY"],
        &["OLLAMA_API_BASE"],
    ),
    known(
        "ollama_chat",
        Ollama,
        Some("http://localhost:11434"),
        &["OLLAMA_API_KEY"],
        &["OLLAMA_API_BASE"],
    ),
    Known {
        fallback_key: Some("fake-api-key"),
        ..known(
            "hosted_vllm",
            OpenAi,
            None,
            &["HOSTED_VLLM_API_KEY"],
            &["HOSTED_VLLM_API_BASE"],
        )
    },
    Known {
        fallback_key: Some("fake-api-key"),
        ..known(
            "lm_studio",
            OpenAi,
            None,
            &["LM_STUDIO_API_KEY"],
            &["LM_STUDIO_API_BASE"],
        )
    },
    known(
        "litellm_proxy",
        LiteLlmProxy,
        None,
        &["LITELLM_PROXY_API_KEY"],
        &["LITELLM_PROXY_API_BASE"],
    ),
    known(
        "groq",
        OpenAi,
        Some("https://api.groq.com/openai/v1"),
        &["GROQ_API_KEY"],
        &["GROQ_API_BASE"],
    ),
    known(
        "together_ai",
        OpenAi,
        Some("https://api.together.ai/v1"),
        &[
            "TOGETHER_API_KEY",
            "TOGETHER_AI_API_KEY",
            "TOGETHERAI_API_KEY",
            "TOGETHER_AI_TOKEN",
        ],
        &["TOGETHER_AI_API_BASE"],
    ),
    known(
        "deepseek",
        OpenAi,
        Some("https://api.deepseek.com/beta"),
        &["DEEPSEEK_API_KEY"],
        &["DEEPSEEK_API_BASE"],
    ),
    known(
        "mistral",
        OpenAi,
        Some("https://api.mistral.ai/v1"),
        &["MISTRAL_AZURE_API_KEY", "MISTRAL_API_KEY"],
        &["MISTRAL_AZURE_API_BASE"],
    ),
    known(
        "codestral",
        OpenAi,
        Some("https://codestral.mistral.ai/v1"),
        &["CODESTRAL_API_KEY"],
        &["CODESTRAL_API_BASE"],
    ),
    known(
        "fireworks_ai",
        OpenAi,
        Some("https://api.fireworks.ai/inference/v1"),
        &[
            "FIREWORKS_API_KEY",
            "FIREWORKS_AI_API_KEY",
            "FIREWORKSAI_API_KEY",
            "FIREWORKS_AI_TOKEN",
        ],
        &["FIREWORKS_API_BASE"],
    ),
    known(
        "openrouter",
        OpenAi,
        Some("https://openrouter.ai/api/v1"),
        &["OPENROUTER_API_KEY", "OR_API_KEY"],
        &["OPENROUTER_API_BASE"],
    ),
    known(
        "perplexity",
        OpenAi,
        Some("https://api.perplexity.ai"),
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        &["PERPLEXITY_API_BASE"],
    ),
    known(
        "xai",
        OpenAi,
        Some("https://api.x.ai/v1"),
        &["XAI_API_KEY"],
        &["XAI_API_BASE"],
    ),
    known(
        "deepinfra",
        OpenAi,
        Some("https://api.deepinfra.com/v1/openai"),
        &["DEEPINFRA_API_KEY"],
        &["DEEPINFRA_API_BASE"],
    ),
    known(
        "cerebras",
        OpenAi,
        Some("https://api.cerebras.ai/v1"),
        &["CEREBRAS_API_KEY"],
        &["CEREBRAS_API_BASE"],
    ),
    known(
        "nvidia_nim",
        OpenAi,
        Some("https://integrate.api.nvidia.com/v1"),
        &["NVIDIA_NIM_API_KEY"],
        &["NVIDIA_NIM_API_BASE"],
    ),
    known(
        "sambanova",
        OpenAi,
        Some("https://api.sambanova.ai/v1"),
        &["SAMBANOVA_API_KEY"],
        &["SAMBANOVA_API_BASE"],
    ),
    known(
        "anyscale",
        OpenAi,
        Some("https://api.endpoints.anyscale.com/v1"),
        &["ANYSCALE_API_KEY"],
        &["ANYSCALE_API_BASE"],
    ),
    known(
        "friendliai",
        OpenAi,
        Some("https://api.friendli.ai/serverless/v1"),
        &["FRIENDLIAI_API_KEY", "FRIENDLI_TOKEN"],
        &["FRIENDLI_API_BASE"],
    ),
    known(
        "github",
        OpenAi,
        Some("https://models.inference.ai.azure.com"),
        &["GITHUB_API_KEY"],
        &["GITHUB_API_BASE"],
    ),
    known(
        "nebius",
        OpenAi,
        Some("https://api.studio.nebius.ai/v1"),
        &["NEBIUS_API_KEY"],
        &["NEBIUS_API_BASE"],
    ),
    known(
        "novita",
        OpenAi,
        Some("https://api.novita.ai/v3/openai"),
        &["NOVITA_API_KEY"],
        &["NOVITA_API_BASE"],
    ),
    known(
        "hyperbolic",
        OpenAi,
        Some("https://api.hyperbolic.xyz/v1"),
        &["HYPERBOLIC_API_KEY"],
        &["HYPERBOLIC_API_BASE"],
    ),
    known(
        "lambda_ai",
        OpenAi,
        Some("https://api.lambda.ai/v1"),
        &["LAMBDA_API_KEY"],
        &["LAMBDA_API_BASE"],
    ),
    known(
        "featherless_ai",
        OpenAi,
        Some("https://api.featherless.ai/v1"),
        &["FEATHERLESS_AI_API_KEY", "FEATHERLESS_API_KEY"],
        &["FEATHERLESS_AI_API_BASE", "FEATHERLESS_API_BASE"],
    ),
    known(
        "dashscope",
        OpenAi,
        Some("https://dashscope.aliyuncs.com/compatible-mode/v1"),
        &["DASHSCOPE_API_KEY"],
        &["DASHSCOPE_API_BASE"],
    ),
    known(
        "moonshot",
        OpenAi,
        Some("https://api.moonshot.ai/v1"),
        &["MOONSHOT_API_KEY"],
        &["MOONSHOT_API_BASE"],
    ),
];

/// The natively served prefix `prefix`, if it is one.
pub(super) fn native(prefix: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.prefix == prefix)
}

/// The prefix LiteLLM infers for a model written without one, where llm-tower serves it
/// natively (OpenAI's and Anthropic's model names; others LiteLLM maps to providers such
/// as Vertex AI, which only it serves).
pub(super) fn inferred(model: &str) -> Option<&'static str> {
    const OPENAI: &[&str] = &[
        "gpt-",
        "chatgpt-",
        "o1",
        "o3",
        "o4",
        "text-embedding-",
        "davinci-",
        "babbage-",
    ];
    if OPENAI.iter().any(|p| model.starts_with(p)) {
        Some("openai")
    } else if model.starts_with("claude-") {
        Some("anthropic")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_is_listed_once_with_a_base_or_a_required_api_base() {
        for (i, k) in KNOWN.iter().enumerate() {
            assert!(
                KNOWN[..i].iter().all(|o| o.prefix != k.prefix),
                "{}",
                k.prefix
            );
            if let Some(base) = k.api_base {
                assert!(base.starts_with("https://") || base.starts_with("http://localhost"));
                assert!(!base.ends_with('/'), "{base}");
            }
        }
        assert_eq!(native("groq").unwrap().native, Native::OpenAi);
        assert!(native("bedrock").is_none());
        assert_eq!(inferred("gpt-4o-mini"), Some("openai"));
        assert_eq!(inferred("claude-3-5-sonnet-20240620"), Some("anthropic"));
        assert_eq!(inferred("gemini-pro"), None);
    }
}
