//! Objects as a watch cache keeps them: without `metadata.managedFields`, skipped while the JSON is
//! read instead of parsed and then dropped. They are most of an object's size, each entry's
//! fields a tree of maps that k8s-openapi holds as `serde_json::Value`; a cache takes an event for
//! every change anyone makes to its kind, and reads never show them.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use kube::Resource;
use kube::core::ObjectMeta;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// K as a watch or a list brings it, without its managedFields.
#[derive(Clone, Debug)]
pub struct Slim<K>(pub K);

impl<K: Resource<DynamicType = ()>> Resource for Slim<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Slim<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object<K>(PhantomData<K>);
        impl<'de, K: DeserializeOwned> Visitor<'de> for Object<K> {
            type Value = K;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Kubernetes object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<K, A::Error> {
                K::deserialize(AsMap(ObjectFields {
                    map,
                    metadata: false,
                }))
            }
        }
        d.deserialize_map(Object(PhantomData)).map(Slim)
    }
}

/// A map key as the JSON holds it: borrowed unless it had escapes.
struct KeyName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(KeyName(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(KeyName(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(KeyName(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> KeyName<'de> {
    /// Hand the key to what the object's own Deserialize expects.
    fn into_seed<S: DeserializeSeed<'de>, E: serde::de::Error>(
        self,
        seed: S,
    ) -> Result<S::Value, E> {
        match self.0 {
            Cow::Borrowed(s) => seed.deserialize(BorrowedStrDeserializer::<E>::new(s)),
            Cow::Owned(s) => seed.deserialize(StringDeserializer::<E>::new(s)),
        }
    }
}

/// An object's fields as they come, but `metadata`'s through [`MetadataFields`].
struct ObjectFields<A> {
    map: A,
    /// The last key was `metadata`.
    metadata: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for ObjectFields<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let Some(key) = self.map.next_key::<KeyName<'de>>()? else {
            return Ok(None);
        };
        self.metadata = key.0 == "metadata";
        key.into_seed(seed).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        if self.metadata {
            self.map.next_value_seed(Metadata(seed))
        } else {
            self.map.next_value_seed(seed)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// The value of `metadata`, read through [`MetadataFields`].
struct Metadata<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Metadata<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Metadata<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S::Value, A::Error> {
        self.0.deserialize(AsMap(MetadataFields(map)))
    }
}

/// Filtered fields as a map to deserialize from, also where it is read as an `Option` (as
/// k8s-openapi reads every field before it checks the required ones), which serde's
/// `MapAccessDeserializer` refuses.
struct AsMap<M>(M);

impl<'de, M: MapAccess<'de>> Deserializer<'de> for AsMap<M> {
    type Error = M::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, M::Error> {
        visitor.visit_map(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, M::Error> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Metadata's fields as they come, without `managedFields` (its value skipped unparsed).
struct MetadataFields<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for MetadataFields<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        loop {
            let Some(key) = self.0.next_key::<KeyName<'de>>()? else {
                return Ok(None);
            };
            if key.0 == "managedFields" {
                self.0.next_value::<IgnoredAny>()?;
                continue;
            }
            return key.into_seed(seed).map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::core::WatchEvent;

    #[test]
    fn managed_fields_are_left_out_and_the_rest_is_kept() {
        let json = r#"{"apiVersion":"apps/v1","k\u0069nd":"Deployment","metadata":{"name":"web","namespace":"default","resourceVersion":"42","labels":{"app":"web","a\"b":"c"},"managedFields":[{"manager":"kubegate","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{}}}}],"uid":"u-1"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"},"managedFields":[]},"spec":{"containers":[{"name":"web","image":"nginx:1"}]}}},"status":{"replicas":3}}"#;
        let full: Deployment = serde_json::from_str(json).unwrap();
        let Slim(slim) = serde_json::from_str::<Slim<Deployment>>(json).unwrap();
        assert!(full.metadata.managed_fields.is_some());
        assert_eq!(slim.metadata.managed_fields, None);
        let mut expected = full;
        expected.metadata.managed_fields = None;
        assert_eq!(slim, expected);
        // A watch event whose object comes before its type: serde buffers the object first.
        let event = format!(r#"{{"object":{json},"type":"MODIFIED"}}"#);
        match serde_json::from_str::<WatchEvent<Slim<Deployment>>>(&event).unwrap() {
            WatchEvent::Modified(Slim(d)) => assert_eq!(d, expected),
            other => panic!("{other:?}"),
        }
        // Not a Deployment: refused as k8s-openapi refuses it.
        assert!(
            serde_json::from_str::<Slim<Deployment>>(
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<Slim<Deployment>>("[]").is_err());
        // A Deployment as the API server sends it, three field managers and all.
        let object = include_str!("../../tests/fixtures/deployment-watched.json");
        let mut whole: Deployment = serde_json::from_str(object).unwrap();
        assert_eq!(
            whole.metadata.managed_fields.as_ref().map(Vec::len),
            Some(3)
        );
        whole.metadata.managed_fields = None;
        assert_eq!(
            serde_json::from_str::<Slim<Deployment>>(object).unwrap().0,
            whole
        );
    }

    /// What a watch event of a Deployment with three field managers costs to read, whole and
    /// slim (a measurement, not a check: `cargo test --release --lib slim -- --ignored
    /// --nocapture`).
    #[test]
    #[ignore]
    fn decode_cost() {
        let object = include_str!("../../tests/fixtures/deployment-watched.json").trim();
        let line = format!(r#"{{"type":"MODIFIED","object":{object}}}"#);
        const N: u32 = 20_000;
        for round in 1..=3 {
            let t = std::time::Instant::now();
            for _ in 0..N {
                let e: WatchEvent<Deployment> = serde_json::from_str(&line).unwrap();
                std::hint::black_box(e);
            }
            let whole = t.elapsed() / N;
            let t = std::time::Instant::now();
            for _ in 0..N {
                let e: WatchEvent<Slim<Deployment>> = serde_json::from_str(&line).unwrap();
                std::hint::black_box(e);
            }
            let slim = t.elapsed() / N;
            println!("round {round}: whole {whole:?}, without managedFields {slim:?} per event");
        }
    }
}
