//! Where a node of a YAML text is: the line and column that runbook and Sigma errors name.
//!
//! serde_yaml keeps no positions in its values, so the text is deserialized again with a seed
//! that fails on purpose when it reaches the node: serde_yaml stamps the failure with the node's
//! position.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A mapping key (string keys only; other keys never match).
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// The 1-based line and column of the node at `path`, or `None` if the path is not in the text
/// (e.g. a defaulted field).
pub(crate) fn locate(text: &str, path: &[Step<'_>]) -> Option<(usize, usize)> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match (Locator { path }).deserialize(deserializer) {
        Err(error) if error.to_string().contains(LOCATED) => error
            .location()
            .map(|location| (location.line(), location.column())),
        _ => None,
    }
}

const LOCATED: &str = "__trailgate_located__";

struct Locator<'p, 'a> {
    path: &'p [Step<'a>],
}

impl<'de> DeserializeSeed<'de> for Locator<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locator<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(LOCATED));
        };
        // Keys are read as any value: a Sigma file may have non-string keys, which never match.
        while let Some(key) = map.next_key::<Value>()? {
            match head {
                Step::Key(wanted) if key.as_str() == Some(wanted) => {
                    return map.next_value_seed(Locator { path: rest });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(LOCATED));
        };
        let mut index = 0;
        loop {
            if *head == Step::Index(index) {
                return seq.next_element_seed(Locator { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
}

impl Locator<'_, '_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(LOCATED))
        } else {
            Ok(())
        }
    }
}
