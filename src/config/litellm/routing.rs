//! `model_list` groups as llm-tower routes them: a provider per natively served
//! deployment, an alias for a group of one, a combo for a group of several (LiteLLM's
//! `routing_strategy`) or with fallbacks (`fallbacks`, `context_window_fallbacks`,
//! `default_fallbacks`), and `model_group_alias` as aliases.

use std::collections::{BTreeMap, HashMap};

use super::deployment::{Deployment, Served};
use super::{EntryReport, How};
use crate::combo::{ComboSettings, ComboStrategy, ComboTarget};
use crate::config::ProviderConfig;
use crate::metering::Price;

/// A group's fallbacks by model name, from one of LiteLLM's `[{group: [fallback, …]}]`.
pub(super) type FallbackLists = Vec<(String, Vec<String>)>;

/// What the routing settings say, read.
pub(super) struct Routing {
    pub(super) strategy: Strategy,
    pub(super) fallbacks: FallbackLists,
    pub(super) context_window_fallbacks: FallbackLists,
    pub(super) default_fallbacks: Vec<String>,
    /// `model_group_alias`: name → group.
    pub(super) group_aliases: Vec<(String, String)>,
}

/// LiteLLM's `routing_strategy`, as llm-tower does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// `simple-shuffle`: random in proportion to `weight` / `rpm` / `tpm`.
    Shuffle,
    /// `least-busy`.
    LeastBusy,
    /// `usage-based-routing(-v2)`: the fewest tokens this minute, deployments at their
    /// `rpm`/`tpm` skipped.
    Usage,
    /// `latency-based-routing`.
    Latency,
    /// `cost-based-routing`: the cheapest deployment first.
    Cost,
}

impl Strategy {
    /// The strategy named `name`, or why it cannot be honoured.
    pub(super) fn parse(name: &str) -> Result<Self, String> {
        match name {
            "simple-shuffle" => Ok(Self::Shuffle),
            "least-busy" => Ok(Self::LeastBusy),
            "usage-based-routing" | "usage-based-routing-v2" => Ok(Self::Usage),
            "latency-based-routing" => Ok(Self::Latency),
            "cost-based-routing" => Ok(Self::Cost),
            "provider-budget-routing" | "lar1" => Err(format!(
                "`{name}` is not supported by llm-tower: use simple-shuffle, least-busy, \
                 usage-based-routing, latency-based-routing or cost-based-routing"
            )),
            other => Err(format!(
                "`{other}` is not a routing strategy: use simple-shuffle, least-busy, \
                 usage-based-routing, usage-based-routing-v2, latency-based-routing or \
                 cost-based-routing"
            )),
        }
    }
}

/// The routing a `model_list` compiles to.
#[derive(Default)]
pub(super) struct Routes {
    pub(super) providers: BTreeMap<String, ProviderConfig>,
    pub(super) aliases: BTreeMap<String, String>,
    pub(super) combos: BTreeMap<String, ComboSettings>,
    /// Prices by `provider/model`.
    pub(super) prices: BTreeMap<String, Price>,
    pub(super) entries: Vec<EntryReport>,
    /// What could not be followed, with why.
    pub(super) skipped: Vec<String>,
}

/// A group's deployments as combo targets.
struct Group {
    targets: Vec<Member>,
    wildcard: bool,
}

/// One target of a group.
struct Member {
    /// `provider/model`.
    target: String,
    weight: u32,
    /// Input + output price per million tokens, when known.
    cost: Option<f64>,
    rpm: Option<u64>,
    tpm: Option<u64>,
}

/// Compiles `deployments`. `proxy` is the LiteLLM proxy provider (name, api_base) for
/// entries served via LiteLLM; `taken` says which provider names are already in use.
pub(super) fn compile(
    deployments: Vec<Deployment>,
    routing: &Routing,
    proxy: Option<(&str, &str)>,
    taken: &dyn Fn(&str) -> bool,
) -> Routes {
    let mut routes = Routes::default();
    // Groups in the order their first entry appears.
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();

    for d in deployments {
        let group = groups.entry(d.model_name.clone()).or_insert_with(|| {
            order.push(d.model_name.clone());
            Group {
                targets: Vec::new(),
                wildcard: d.is_wildcard(),
            }
        });
        let cost = d.price.map(|p| p.input + p.output);
        let how = match d.served {
            Served::Native {
                provider,
                model,
                api,
            } => {
                let name = provider_name(d.id.as_deref(), &d.model_name, |n| {
                    taken(n)
                        || routes.providers.contains_key(n)
                        || proxy.is_some_and(|(p, _)| p == n)
                });
                let settings = provider.settings();
                let how = How::Native {
                    provider: name.clone(),
                    kind: settings.kind(),
                    api,
                    api_base: settings.upstream().to_owned(),
                    model: model.clone(),
                };
                let target = format!("{name}/{model}");
                if let Some(price) = d.price {
                    routes.prices.insert(target.clone(), price);
                }
                group.targets.push(Member {
                    target,
                    weight: d.weight,
                    cost,
                    rpm: d.rpm,
                    tpm: d.tpm,
                });
                routes.providers.insert(name, *provider);
                how
            }
            Served::ViaLiteLlm { why } => match proxy {
                Some((proxy, api_base)) => {
                    // The proxy balances the group's LiteLLM entries itself: one target
                    // with their weights (their limits are the proxy's to keep).
                    let target = format!("{proxy}/{}", d.model_name);
                    match group.targets.iter_mut().find(|t| t.target == target) {
                        Some(t) => t.weight += d.weight,
                        None => group.targets.push(Member {
                            target,
                            weight: d.weight,
                            cost,
                            rpm: None,
                            tpm: None,
                        }),
                    }
                    How::ViaLiteLlm {
                        provider: proxy.to_owned(),
                        api_base: api_base.to_owned(),
                        why,
                    }
                }
                None => How::Unsupported {
                    why: format!(
                        "{why}, and no LiteLLM proxy is configured (`litellm_proxy: {{ api_base, api_key }}`)"
                    ),
                },
            },
        };
        routes.entries.push(EntryReport {
            index: d.index,
            model_name: d.model_name,
            mode: d.mode,
            how,
        });
    }
    // Which groups fall back where.
    let generic = |lists: &FallbackLists| -> Option<Vec<String>> {
        lists.iter().find(|(g, _)| g == "*").map(|(_, f)| f.clone())
    };
    let lookup = |lists: &FallbackLists, group: &str| -> Option<Vec<String>> {
        lists
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, f)| f.clone())
    };
    let default_fallbacks = generic(&routing.fallbacks).or_else(|| {
        (!routing.default_fallbacks.is_empty()).then(|| routing.default_fallbacks.clone())
    });
    for (listed, _) in routing
        .fallbacks
        .iter()
        .chain(&routing.context_window_fallbacks)
    {
        if listed != "*" && !groups.contains_key(listed) {
            routes.skipped.push(format!(
                "fallbacks of `{listed}`: no model_list entry is named `{listed}`"
            ));
        }
    }
    let served = |name: &str| {
        groups
            .get(name)
            .is_some_and(|g| !g.targets.is_empty() && !g.wildcard)
    };
    // Each group's served fallbacks and context-window fallbacks, read once.
    let mut fallbacks: HashMap<&str, (Vec<String>, Vec<String>)> = HashMap::new();
    for group in &order {
        let list = lookup(&routing.fallbacks, group)
            .or_else(|| default_fallbacks.clone())
            .unwrap_or_default();
        let cw = lookup(&routing.context_window_fallbacks, group)
            .or_else(|| generic(&routing.context_window_fallbacks))
            .unwrap_or_default();
        let lists = (
            keep_served(group, list, &served, &mut routes.skipped),
            keep_served(group, cw, &served, &mut routes.skipped),
        );
        fallbacks.insert(group, lists);
    }
    // The node that stands for a group's own deployments, without its fallbacks.
    let core = |group: &str| -> String {
        let targets = &groups[group].targets;
        if targets.len() == 1 {
            targets[0].target.clone()
        } else if !fallbacks[group].0.is_empty() {
            deployments_combo(group)
        } else {
            group.to_owned()
        }
    };

    for name in &order {
        let group = &groups[name];
        if group.targets.is_empty() {
            continue;
        }
        if group.wildcard {
            // A pattern can only be an alias: its first deployment serves it.
            routes
                .aliases
                .insert(name.clone(), group.targets[0].target.clone());
            if group.targets.len() > 1 {
                routes.skipped.push(format!(
                    "`{name}`: a wildcard group is served by its first entry only"
                ));
            }
            continue;
        }
        let (listed, listed_cw) = &fallbacks[name.as_str()];
        let fallbacks: Vec<String> = listed.iter().map(|f| core(f)).collect();
        let cw: Vec<String> = listed_cw.iter().map(|f| core(f)).collect();
        let balanced = balanced(&group.targets, routing.strategy);
        match (group.targets.len(), fallbacks.is_empty(), cw.is_empty()) {
            (1, true, true) => {
                routes
                    .aliases
                    .insert(name.clone(), group.targets[0].target.clone());
            }
            (_, true, _) => {
                routes
                    .combos
                    .insert(name.clone(), balanced.context_window_fallbacks(cw));
            }
            (n, false, _) => {
                let first = if n == 1 {
                    group.targets[0].target.clone()
                } else {
                    routes.combos.insert(deployments_combo(name), balanced);
                    deployments_combo(name)
                };
                let targets = std::iter::once(first).chain(fallbacks);
                routes.combos.insert(
                    name.clone(),
                    ComboSettings::new(targets).context_window_fallbacks(cw),
                );
            }
        }
    }
    for (alias, group) in &routing.group_aliases {
        if served(group) {
            routes.aliases.insert(alias.clone(), group.clone());
        } else {
            routes.skipped.push(format!(
                "model_group_alias `{alias}`: `{group}` is not a served model_name"
            ));
        }
    }
    routes
}

/// The combo of a group's own deployments when the group's name is taken by the combo
/// that adds its fallbacks.
fn deployments_combo(group: &str) -> String {
    format!("{group}@deployments")
}

/// `list` without itself and what is not served, each left out said in `skipped`.
fn keep_served(
    group: &str,
    list: Vec<String>,
    served: &dyn Fn(&str) -> bool,
    skipped: &mut Vec<String>,
) -> Vec<String> {
    list.into_iter()
        .filter(|f| {
            let keep = f != group && served(f);
            if !keep && f != group {
                skipped.push(format!(
                    "fallback `{f}` of `{group}`: not a served model_name"
                ));
            }
            keep
        })
        .collect()
}

/// A combo over a group's deployments, by the routing strategy.
fn balanced(targets: &[Member], strategy: Strategy) -> ComboSettings {
    let names = || targets.iter().map(|t| t.target.clone());
    match strategy {
        // Weights only: LiteLLM does not hold simple-shuffle to rpm/tpm.
        Strategy::Shuffle => {
            let all_zero = targets.iter().all(|t| t.weight == 0);
            detailed(targets, ComboStrategy::Weighted, |t| {
                (if all_zero { 1 } else { t.weight }, None, None)
            })
        }
        Strategy::Usage => detailed(targets, ComboStrategy::LeastUsage, |t| (1, t.rpm, t.tpm)),
        Strategy::LeastBusy => ComboSettings::new(names()).strategy(ComboStrategy::LeastBusy),
        Strategy::Latency => ComboSettings::new(names()).strategy(ComboStrategy::LeastLatency),
        Strategy::Cost => {
            let mut by_cost: Vec<_> = targets.iter().collect();
            // Unknown prices last; the sort is stable, so ties keep the file's order.
            by_cost.sort_by(|a, b| {
                a.cost
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.cost.unwrap_or(f64::INFINITY))
            });
            ComboSettings::new(by_cost.into_iter().map(|t| t.target.clone()))
        }
    }
}

/// A combo of `strategy` over `targets`, each with the weight and limits `of` gives it.
fn detailed(
    targets: &[Member],
    strategy: ComboStrategy,
    of: impl Fn(&Member) -> (u32, Option<u64>, Option<u64>),
) -> ComboSettings {
    let mut combo = ComboSettings::new(Vec::<String>::new()).strategy(strategy);
    combo.targets = targets
        .iter()
        .map(|t| {
            let (weight, rpm, tpm) = of(t);
            ComboTarget::Weighted {
                target: t.target.clone(),
                weight,
                rpm,
                tpm,
            }
        })
        .collect();
    combo
}

/// A provider name for a deployment: its `model_info.id` when that is a usable name,
/// else its `model_name` made one (`openai/gpt-4o` → `openai-gpt-4o`, `*` → `any`); a
/// taken name gets `-2`, `-3`, ….
fn provider_name(id: Option<&str>, model_name: &str, taken: impl Fn(&str) -> bool) -> String {
    let usable = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let base = match id {
        Some(id) if usable(id) => id.to_owned(),
        _ => {
            let mut name = String::new();
            for c in model_name.replace('*', "any").chars() {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
                    name.push(c);
                } else if !name.ends_with('-') {
                    name.push('-');
                }
            }
            let name = name.trim_matches('-');
            if name.is_empty() {
                "deployment".to_owned()
            } else {
                name.to_owned()
            }
        }
    };
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}
