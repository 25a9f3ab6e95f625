//! `aliases:`, `combos:` and `circuit_breaker:`: compiled against the configured providers.

use super::{Config, ConfigError};
use crate::alias::{Aliases, Names};
use crate::combo::{Combos, TargetHealth};

impl Config {
    /// The compiled `aliases:`; errors name the alias (`aliases.NAME`).
    pub fn aliases(&self) -> Result<Aliases, ConfigError> {
        let names = Names {
            provider: &|p| self.providers.contains_key(p),
            combo: &|c| self.combos.contains_key(c),
        };
        Aliases::new(&self.aliases, &names).map_err(|e| e.within("aliases").into())
    }

    /// The compiled `combos:`, their targets resolved through `aliases`; errors name the
    /// field (`combos.NAME.targets.I`, `circuit_breaker.failures`).
    pub fn combos(&self, aliases: &Aliases) -> Result<Combos, ConfigError> {
        self.combos_carrying(aliases, TargetHealth::default())
    }

    /// [`Config::combos`], keeping the state of the targets `health` knows.
    pub fn combos_carrying(
        &self,
        aliases: &Aliases,
        health: TargetHealth,
    ) -> Result<Combos, ConfigError> {
        self.circuit_breaker
            .validate()
            .map_err(|e| ConfigError::from(e.within("circuit_breaker")))?;
        Combos::carrying(
            &self.combos,
            aliases,
            &|p| self.providers.contains_key(p),
            &self.circuit_breaker,
            health,
        )
        .map_err(|e| e.within("combos").into())
    }
}
