//! JSON merge patch (RFC 7396) for the update requests: a field left out stays as it
//! is, `null` clears an optional field, a value replaces it. Optional fields are
//! `Option<Option<T>>` with [`double_option`]: absent is `None`, `null` is `Some(None)`.

/// Serde support for `Option<Option<T>>` fields (use with `#[serde(default, with = …)]`).
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().and_then(Option::as_ref).serialize(s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
