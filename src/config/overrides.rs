//! `--set dotted.key=VALUE` overrides of a parsed [`Config`].
//!
//! The typed config is turned into a JSON tree, the key is replaced (or added, for an optional
//! key left unset, which the tree omits), and the tree is turned back into a typed config, so an
//! override meets the same type and unknown-key checks as the file. `VALUE` is parsed as YAML
//! (`1e-4`, `true`, `[1, 2]`, `random` all work).

use serde_json::Value;

use super::Config;
use crate::error::{Context, Error, Result};

/// Applies `sets` (each `dotted.key=VALUE`) in order.
pub fn apply(config: Config, sets: &[String]) -> Result<Config> {
    if sets.is_empty() {
        return Ok(config);
    }
    let mut tree = serde_json::to_value(&config).expect("config converts to a tree");
    for set in sets {
        let (key, raw) =
            set.split_once('=').ok_or_else(|| Error::Input(format!("--set {set}: expected dotted.key=VALUE")))?;
        let value: Value = serde_saphyr::from_str(raw)
            .map_err(|e| Error::Input(format!("--set {key}={raw}: not a YAML value ({e})")))?;
        let unknown = || Error::Input(format!("--set {key}={raw}: unknown key '{key}'"));
        let (parent, last) = key.rsplit_once('.').map_or((None, key), |(p, l)| (Some(p), l));
        let section = parent
            .into_iter()
            .flat_map(|p| p.split('.'))
            .try_fold(&mut tree, |node, part| node.as_object_mut().and_then(|m| m.get_mut(part)))
            .and_then(Value::as_object_mut)
            .ok_or_else(unknown)?;
        let added = section.insert(last.to_string(), value).is_none();
        serde_json::from_value::<Config>(tree.clone()).map_err(|e| match e.to_string() {
            m if added && m.starts_with("unknown field") => unknown(),
            m => Error::Input(format!("--set {key}={raw}: {m}")),
        })?;
    }
    serde_json::from_value(tree).input_context(|| "--set")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn set(sets: &[&str]) -> Result<Config, String> {
        let c = Config::load(Path::new("configs/kolmogorov-small.yaml"), &[]).expect("config");
        apply(c, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map_err(|e| e.to_string())
    }

    #[test]
    fn an_override_replaces_a_key_or_adds_an_unset_optional_one_and_refuses_unknown_keys() {
        let c = set(&["system.grid=64", "rollout.models=data/kolmogorov-small"]).unwrap();
        assert_eq!(c.system.grid, 64);
        assert_eq!(c.rollout.unwrap().models.unwrap(), Path::new("data/kolmogorov-small"));
        for bad in ["rollout.modelz=x", "nosuch.key=1", "system.grid.x=1", "nosuch=1"] {
            let key = bad.split('=').next().unwrap();
            let e = set(&[bad]).unwrap_err();
            assert_eq!(e, format!("--set {bad}: unknown key '{key}'"));
        }
        let e = set(&["system.grid=abc"]).unwrap_err();
        assert!(e.starts_with("--set system.grid=abc: invalid type"), "{e}");
    }
}
