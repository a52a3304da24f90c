//! `--set dotted.key=VALUE` overrides of a parsed [`Config`].
//!
//! The typed config is turned into a JSON tree, the key is replaced (it must already exist:
//! every key has a value or a default once parsed), and the tree is turned back into a typed
//! config, so an override meets the same type checks as the file. `VALUE` is parsed as YAML
//! (`1e-4`, `true`, `[1, 2]`, `random` all work).

use serde_json::Value;

use super::{Config, ConfigError};

/// Applies `sets` (each `dotted.key=VALUE`) in order.
pub fn apply(config: Config, sets: &[String]) -> Result<Config, ConfigError> {
    if sets.is_empty() {
        return Ok(config);
    }
    let mut tree = serde_json::to_value(&config).expect("config converts to a tree");
    for set in sets {
        let (key, raw) =
            set.split_once('=').ok_or_else(|| ConfigError(format!("--set {set}: expected dotted.key=VALUE")))?;
        let value: Value = serde_saphyr::from_str(raw)
            .map_err(|e| ConfigError(format!("--set {key}={raw}: not a YAML value ({e})")))?;
        let slot = key
            .split('.')
            .try_fold(&mut tree, |node, part| node.as_object_mut().and_then(|m| m.get_mut(part)))
            .ok_or_else(|| ConfigError(format!("--set {key}={raw}: unknown key '{key}'")))?;
        *slot = value;
        serde_json::from_value::<Config>(tree.clone()).map_err(|e| ConfigError(format!("--set {key}={raw}: {e}")))?;
    }
    serde_json::from_value(tree).map_err(|e| ConfigError(format!("--set: {e}")))
}
