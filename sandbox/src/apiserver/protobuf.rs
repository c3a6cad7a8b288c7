//! Decodes `application/vnd.kubernetes.protobuf` request bodies (what client-go's typed clients, so `kubectl create
//! secret|configmap|namespace|serviceaccount|token` and `kubectl auth can-i`, send) into the JSON `Value` the JSON
//! path produces, with the maintained bindings (`k8s-pb` + `prost`).
//!
//! It unwraps the `k8s\0` + `runtime.Unknown` envelope and converts the typed message of the kinds in [`decode`]'s
//! list; the store then checks kind and apiVersion against the URL as for JSON. It does not encode responses (they
//! stay JSON, which kubectl accepts) and decodes no other kind: those get the API server's 415.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::authentication::v1::{BoundObjectReference, TokenRequest};
use k8s_pb::api::authorization::v1::{
    FieldSelectorAttributes, LabelSelectorAttributes, NonResourceAttributes, ResourceAttributes,
    SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
};
use k8s_pb::api::core::v1::{ConfigMap, Namespace, ObjectReference, Secret, ServiceAccount};
use k8s_pb::apimachinery::pkg::apis::meta::v1::{
    FieldSelectorRequirement, LabelSelectorRequirement, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with: `k8s` and the encoding style 0 (a `runtime.Unknown`).
const PREFIX: [u8; 4] = [0x6b, 0x38, 0x73, 0x00];

/// The media types a request body may have, as the 415 answer lists them for kinds the sandbox does not decode.
const ACCEPTED_WITHOUT_PROTOBUF: &str = "application/json, application/yaml";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body is empty (the upstream serializer's message).
    #[error("empty data")]
    EmptyData,
    /// The body does not start with `k8s\0` (the upstream serializer's message, prefix printed as Go prints bytes).
    #[error("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")]
    Prefix,
    /// The body is only the prefix (the upstream serializer's message).
    #[error("empty body")]
    EmptyBody,
    /// The bytes after the prefix are not a `runtime.Unknown`.
    #[error("unable to decode the runtime.Unknown envelope of the protobuf body: {source}")]
    Envelope {
        /// What prost found wrong.
        source: prost::DecodeError,
    },
    /// The envelope's `raw` bytes are not the message its `typeMeta` names.
    #[error("unable to decode the protobuf {api_version} {kind} in the request body: {source}")]
    Message {
        /// `typeMeta.apiVersion` of the envelope.
        api_version: String,
        /// `typeMeta.kind` of the envelope.
        kind: String,
        /// What prost found wrong.
        source: prost::DecodeError,
    },
    /// A kind the sandbox has no conversion for.
    #[error("the sandbox API server does not decode protobuf bodies of {api_version} {kind}")]
    UnsupportedKind {
        /// `typeMeta.apiVersion` of the envelope.
        api_version: String,
        /// `typeMeta.kind` of the envelope.
        kind: String,
    },
}

impl ProtobufError {
    /// The API answer: 415 (with the real server's message) for a kind the sandbox does not decode, 400 with the
    /// decoder's message for a malformed body, as kube-apiserver answers a body it cannot decode.
    pub fn into_api_error(self) -> ApiError {
        match self {
            ProtobufError::UnsupportedKind { .. } => ApiError::UnsupportedMediaType {
                accepted: ACCEPTED_WITHOUT_PROTOBUF.into(),
            },
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// Decodes a request body whose Content-Type mentions protobuf: the Kubernetes encoding is decoded with
/// [`decode`]; any other protobuf media type gets the 415 a real API server gives it.
pub fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(MEDIA_TYPE) {
        return Err(ApiError::UnsupportedMediaType {
            accepted: ACCEPTED_WITHOUT_PROTOBUF.into(),
        });
    }
    decode(body).map_err(|error| {
        tracing::debug!(%error, "refusing a protobuf request body");
        error.into_api_error()
    })
}

/// Decodes one protobuf request body into the JSON object the same request would carry as JSON.
///
/// Decoded kinds: core/v1 Secret, ConfigMap, Namespace, ServiceAccount; authentication.k8s.io/v1 TokenRequest;
/// authorization.k8s.io/v1 SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    if body.is_empty() {
        return Err(ProtobufError::EmptyData);
    }
    let Some(envelope) = body.strip_prefix(&PREFIX) else {
        return Err(ProtobufError::Prefix);
    };
    if envelope.is_empty() {
        return Err(ProtobufError::EmptyBody);
    }
    let unknown = Unknown::decode(envelope).map_err(|source| ProtobufError::Envelope { source })?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let message_error = |source| ProtobufError::Message {
        api_version: api_version.clone(),
        kind: kind.clone(),
        source,
    };
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret(Secret::decode(raw.as_slice()).map_err(message_error)?),
        ("v1", "ConfigMap") => config_map(ConfigMap::decode(raw.as_slice()).map_err(message_error)?),
        ("v1", "Namespace") => namespace(Namespace::decode(raw.as_slice()).map_err(message_error)?),
        ("v1", "ServiceAccount") => service_account(ServiceAccount::decode(raw.as_slice()).map_err(message_error)?),
        ("authentication.k8s.io/v1", "TokenRequest") => {
            token_request(TokenRequest::decode(raw.as_slice()).map_err(message_error)?)
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            self_subject_access_review(SelfSubjectAccessReview::decode(raw.as_slice()).map_err(message_error)?)
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            self_subject_rules_review(SelfSubjectRulesReview::decode(raw.as_slice()).map_err(message_error)?)
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            subject_access_review(SubjectAccessReview::decode(raw.as_slice()).map_err(message_error)?)
        }
        _ => return Err(ProtobufError::UnsupportedKind { api_version, kind }),
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

/// A JSON object under construction that, like Go's `omitempty`, leaves out what protobuf leaves unset or empty.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn string(mut self, key: &str, value: Option<String>) -> Self {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.0.insert(key.into(), json!(v));
        }
        self
    }

    fn boolean(mut self, key: &str, value: Option<bool>) -> Self {
        if let Some(v) = value {
            self.0.insert(key.into(), json!(v));
        }
        self
    }

    fn integer(mut self, key: &str, value: Option<i64>) -> Self {
        if let Some(v) = value {
            self.0.insert(key.into(), json!(v));
        }
        self
    }

    fn strings(mut self, key: &str, values: Vec<String>) -> Self {
        if !values.is_empty() {
            self.0.insert(key.into(), json!(values));
        }
        self
    }

    fn string_map(mut self, key: &str, map: BTreeMap<String, String>) -> Self {
        if !map.is_empty() {
            self.0.insert(key.into(), json!(map));
        }
        self
    }

    /// Bytes become base64 strings, as JSON carries `[]byte`.
    fn bytes_map(mut self, key: &str, map: BTreeMap<String, Vec<u8>>) -> Self {
        if !map.is_empty() {
            let encoded: Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, json!(base64::engine::general_purpose::STANDARD.encode(v))))
                .collect();
            self.0.insert(key.into(), Value::Object(encoded));
        }
        self
    }

    fn time(mut self, key: &str, value: Option<Time>) -> Self {
        if let Some(text) = value.and_then(rfc3339) {
            self.0.insert(key.into(), json!(text));
        }
        self
    }

    /// A nested object, left out when it has no field (an empty protobuf message).
    fn object(mut self, key: &str, value: Option<Map<String, Value>>) -> Self {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.0.insert(key.into(), Value::Object(v));
        }
        self
    }

    fn objects(mut self, key: &str, values: Vec<Map<String, Value>>) -> Self {
        if !values.is_empty() {
            self.0.insert(
                key.into(),
                Value::Array(values.into_iter().map(Value::Object).collect()),
            );
        }
        self
    }

    fn done(self) -> Map<String, Value> {
        self.0
    }
}

/// A `meta/v1.Time` as JSON carries it; the empty message (kubectl's unset `creationTimestamp`) is no time at all.
fn rfc3339(time: Time) -> Option<String> {
    if time.seconds.is_none() && time.nanos.is_none() {
        return None;
    }
    let timestamp = k8s_openapi::jiff::Timestamp::from_second(time.seconds.unwrap_or_default()).ok()?;
    Some(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn object_meta(meta: Option<ObjectMeta>) -> Option<Map<String, Value>> {
    let meta = meta?;
    Some(
        Fields::default()
            .string("name", meta.name)
            .string("generateName", meta.generate_name)
            .string("namespace", meta.namespace)
            .string("selfLink", meta.self_link)
            .string("uid", meta.uid)
            .string("resourceVersion", meta.resource_version)
            // A plain int64 in Go, always on the wire; JSON leaves 0 out.
            .integer("generation", meta.generation.filter(|g| *g != 0))
            .time("creationTimestamp", meta.creation_timestamp)
            .time("deletionTimestamp", meta.deletion_timestamp)
            .integer("deletionGracePeriodSeconds", meta.deletion_grace_period_seconds)
            .string_map("labels", meta.labels)
            .string_map("annotations", meta.annotations)
            .objects(
                "ownerReferences",
                meta.owner_references.into_iter().map(owner_reference).collect(),
            )
            .strings("finalizers", meta.finalizers)
            .objects(
                "managedFields",
                meta.managed_fields.into_iter().map(managed_fields_entry).collect(),
            )
            .done(),
    )
}

fn owner_reference(owner: OwnerReference) -> Map<String, Value> {
    Fields::default()
        .string("apiVersion", owner.api_version)
        .string("kind", owner.kind)
        .string("name", owner.name)
        .string("uid", owner.uid)
        .boolean("controller", owner.controller)
        .boolean("blockOwnerDeletion", owner.block_owner_deletion)
        .done()
}

fn managed_fields_entry(entry: ManagedFieldsEntry) -> Map<String, Value> {
    let mut fields = Fields::default()
        .string("manager", entry.manager)
        .string("operation", entry.operation)
        .string("apiVersion", entry.api_version)
        .time("time", entry.time)
        .string("fieldsType", entry.fields_type)
        .string("subresource", entry.subresource)
        .done();
    // FieldsV1 carries its JSON text as bytes.
    if let Some(value) = entry
        .fields_v1
        .and_then(|f| f.raw)
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
    {
        fields.insert("fieldsV1".into(), value);
    }
    fields
}

fn with_meta(meta: Option<ObjectMeta>) -> Fields {
    // JSON bodies always carry metadata; an empty one lets the store say which field is missing.
    let mut fields = Fields::default();
    fields
        .0
        .insert("metadata".into(), Value::Object(object_meta(meta).unwrap_or_default()));
    fields
}

fn secret(secret: Secret) -> Map<String, Value> {
    with_meta(secret.metadata)
        .bytes_map("data", secret.data)
        .string_map("stringData", secret.string_data)
        // `type` "" is unset, which the store defaults to Opaque as for JSON.
        .string("type", secret.r#type)
        .boolean("immutable", secret.immutable)
        .done()
}

fn config_map(config_map: ConfigMap) -> Map<String, Value> {
    with_meta(config_map.metadata)
        .string_map("data", config_map.data)
        .bytes_map("binaryData", config_map.binary_data)
        .boolean("immutable", config_map.immutable)
        .done()
}

fn namespace(namespace: Namespace) -> Map<String, Value> {
    let spec = namespace
        .spec
        .map(|s| Fields::default().strings("finalizers", s.finalizers).done());
    let status = namespace
        .status
        .map(|s| Fields::default().string("phase", s.phase).done());
    with_meta(namespace.metadata)
        .object("spec", spec)
        .object("status", status)
        .done()
}

fn object_reference(reference: ObjectReference) -> Map<String, Value> {
    Fields::default()
        .string("kind", reference.kind)
        .string("namespace", reference.namespace)
        .string("name", reference.name)
        .string("uid", reference.uid)
        .string("apiVersion", reference.api_version)
        .string("resourceVersion", reference.resource_version)
        .string("fieldPath", reference.field_path)
        .done()
}

fn service_account(account: ServiceAccount) -> Map<String, Value> {
    let pull_secrets = account
        .image_pull_secrets
        .into_iter()
        .map(|s| Fields::default().string("name", s.name).done())
        .collect();
    with_meta(account.metadata)
        .objects("secrets", account.secrets.into_iter().map(object_reference).collect())
        .objects("imagePullSecrets", pull_secrets)
        .boolean("automountServiceAccountToken", account.automount_service_account_token)
        .done()
}

fn bound_object_reference(reference: BoundObjectReference) -> Map<String, Value> {
    Fields::default()
        .string("kind", reference.kind)
        .string("apiVersion", reference.api_version)
        .string("name", reference.name)
        // The proto field is `uID` (JSON `uid`).
        .string("uid", reference.u_id)
        .done()
}

fn token_request(request: TokenRequest) -> Map<String, Value> {
    let spec = request.spec.map(|spec| {
        Fields::default()
            .strings("audiences", spec.audiences)
            .integer("expirationSeconds", spec.expiration_seconds)
            .object("boundObjectRef", spec.bound_object_ref.map(bound_object_reference))
            .done()
    });
    // The spec is required in JSON too; an empty one is `{}`.
    with_meta(request.metadata).keep_object("spec", spec).done()
}

fn label_requirements(requirements: Vec<LabelSelectorRequirement>) -> Vec<Map<String, Value>> {
    requirements
        .into_iter()
        .map(|r| {
            Fields::default()
                .string("key", r.key)
                .string("operator", r.operator)
                .strings("values", r.values)
                .done()
        })
        .collect()
}

fn field_requirements(requirements: Vec<FieldSelectorRequirement>) -> Vec<Map<String, Value>> {
    requirements
        .into_iter()
        .map(|r| {
            Fields::default()
                .string("key", r.key)
                .string("operator", r.operator)
                .strings("values", r.values)
                .done()
        })
        .collect()
}

fn field_selector(selector: FieldSelectorAttributes) -> Map<String, Value> {
    Fields::default()
        .string("rawSelector", selector.raw_selector)
        .objects("requirements", field_requirements(selector.requirements))
        .done()
}

fn label_selector(selector: LabelSelectorAttributes) -> Map<String, Value> {
    Fields::default()
        .string("rawSelector", selector.raw_selector)
        .objects("requirements", label_requirements(selector.requirements))
        .done()
}

fn resource_attributes(attributes: ResourceAttributes) -> Map<String, Value> {
    Fields::default()
        .string("namespace", attributes.namespace)
        .string("verb", attributes.verb)
        .string("group", attributes.group)
        .string("version", attributes.version)
        .string("resource", attributes.resource)
        .string("subresource", attributes.subresource)
        .string("name", attributes.name)
        .object("fieldSelector", attributes.field_selector.map(field_selector))
        .object("labelSelector", attributes.label_selector.map(label_selector))
        .done()
}

fn non_resource_attributes(attributes: NonResourceAttributes) -> Map<String, Value> {
    Fields::default()
        .string("path", attributes.path)
        .string("verb", attributes.verb)
        .done()
}

fn self_subject_access_review(review: SelfSubjectAccessReview) -> Map<String, Value> {
    let spec = review.spec.map(|spec| {
        Fields::default()
            .object("resourceAttributes", spec.resource_attributes.map(resource_attributes))
            .object(
                "nonResourceAttributes",
                spec.non_resource_attributes.map(non_resource_attributes),
            )
            .done()
    });
    with_meta(review.metadata).keep_object("spec", spec).done()
}

fn self_subject_rules_review(review: SelfSubjectRulesReview) -> Map<String, Value> {
    let spec = review
        .spec
        .map(|spec| Fields::default().string("namespace", spec.namespace).done());
    with_meta(review.metadata).keep_object("spec", spec).done()
}

fn subject_access_review(review: SubjectAccessReview) -> Map<String, Value> {
    let spec = review.spec.map(|spec| {
        let extra: Map<String, Value> = spec
            .extra
            .into_iter()
            .map(|(key, values)| (key, json!(values.items)))
            .collect();
        Fields::default()
            .object("resourceAttributes", spec.resource_attributes.map(resource_attributes))
            .object(
                "nonResourceAttributes",
                spec.non_resource_attributes.map(non_resource_attributes),
            )
            .string("user", spec.user)
            .strings("groups", spec.groups)
            .object("extra", Some(extra))
            .string("uid", spec.uid)
            .done()
    });
    with_meta(review.metadata).keep_object("spec", spec).done()
}

impl Fields {
    /// A nested object kept even when empty (a required struct, which JSON always carries).
    fn keep_object(mut self, key: &str, value: Option<Map<String, Value>>) -> Self {
        self.0.insert(key.into(), Value::Object(value.unwrap_or_default()));
        self
    }
}

#[cfg(test)]
mod tests {
    use k8s_pb::api::authorization::v1::{SelfSubjectAccessReviewSpec, SelfSubjectRulesReviewSpec};
    use k8s_pb::api::core::v1::{LocalObjectReference, NamespaceSpec, NamespaceStatus};
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    use super::*;

    /// What kubectl sends: the prefix, then an Unknown with empty contentEncoding/contentType around `message`.
    fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(message.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = PREFIX.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    /// ObjectMeta as kubectl fills it: the name, every other string empty, generation 0, an empty Time.
    fn kubectl_meta(name: &str) -> Option<ObjectMeta> {
        Some(ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(Time::default()),
            ..Default::default()
        })
    }

    #[test]
    fn secret_as_kubectl_create_secret_generic_sends_it() {
        let secret = Secret {
            metadata: kubectl_meta("s1"),
            data: BTreeMap::from([("k".to_string(), b"v\x00\xff".to_vec())]),
            r#type: Some(String::new()),
            ..Default::default()
        };
        let decoded = decode(&envelope("v1", "Secret", &secret)).expect("decodes");
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {"k": "dgD/"}})
        );
    }

    #[test]
    fn secret_type_string_data_labels_and_times_are_kept() {
        let secret = Secret {
            metadata: Some(ObjectMeta {
                name: Some("tls".into()),
                labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                creation_timestamp: Some(Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                owner_references: vec![OwnerReference {
                    api_version: Some("v1".into()),
                    kind: Some("ConfigMap".into()),
                    name: Some("owner".into()),
                    uid: Some("u-1".into()),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                ..Default::default()
            }),
            string_data: BTreeMap::from([("plain".to_string(), "text".to_string())]),
            r#type: Some("kubernetes.io/tls".into()),
            immutable: Some(false),
            ..Default::default()
        };
        let decoded = decode(&envelope("v1", "Secret", &secret)).expect("decodes");
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "tls", "labels": {"app": "web"}, "creationTimestamp": "2023-11-14T22:13:20Z",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1",
                                         "controller": true}],
                },
                "stringData": {"plain": "text"}, "type": "kubernetes.io/tls", "immutable": false,
            })
        );
    }

    #[test]
    fn config_map_namespace_and_service_account() {
        let config_map = ConfigMap {
            metadata: kubectl_meta("c1"),
            data: BTreeMap::from([("a".to_string(), "1".to_string())]),
            binary_data: BTreeMap::from([("b".to_string(), vec![1, 2, 3])]),
            ..Default::default()
        };
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &config_map)).expect("configmap"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"},
                   "data": {"a": "1"}, "binaryData": {"b": "AQID"}})
        );

        // kubectl create namespace sends an empty spec and a status with an empty phase: both unset.
        let namespace = Namespace {
            metadata: kubectl_meta("n1"),
            spec: Some(NamespaceSpec::default()),
            status: Some(NamespaceStatus {
                phase: Some(String::new()),
                conditions: Vec::new(),
            }),
        };
        assert_eq!(
            decode(&envelope("v1", "Namespace", &namespace)).expect("namespace"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1"}})
        );

        let account = ServiceAccount {
            metadata: kubectl_meta("sa1"),
            image_pull_secrets: vec![LocalObjectReference {
                name: Some("registry".into()),
            }],
            automount_service_account_token: Some(false),
            ..Default::default()
        };
        assert_eq!(
            decode(&envelope("v1", "ServiceAccount", &account)).expect("serviceaccount"),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa1"},
                   "imagePullSecrets": [{"name": "registry"}], "automountServiceAccountToken": false})
        );
    }

    #[test]
    fn token_request_and_reviews() {
        let request = TokenRequest {
            metadata: kubectl_meta(""),
            spec: Some(k8s_pb::api::authentication::v1::TokenRequestSpec {
                audiences: vec!["foo".into()],
                expiration_seconds: Some(600),
                bound_object_ref: None,
            }),
            status: None,
        };
        assert_eq!(
            decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &request)).expect("token request"),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
                   "spec": {"audiences": ["foo"], "expirationSeconds": 600}})
        );

        let review = SelfSubjectAccessReview {
            metadata: kubectl_meta(""),
            spec: Some(SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("get".into()),
                    group: Some(String::new()),
                    resource: Some("secrets".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: None,
        };
        assert_eq!(
            decode(&envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", &review)).expect("ssar"),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                   "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "secrets"}}})
        );

        let rules = SelfSubjectRulesReview {
            metadata: kubectl_meta(""),
            spec: Some(SelfSubjectRulesReviewSpec {
                namespace: Some("ns1".into()),
            }),
            status: None,
        };
        assert_eq!(
            decode(&envelope("authorization.k8s.io/v1", "SelfSubjectRulesReview", &rules)).expect("ssrr"),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "metadata": {},
                   "spec": {"namespace": "ns1"}})
        );

        let subject = SubjectAccessReview {
            metadata: kubectl_meta(""),
            spec: Some(k8s_pb::api::authorization::v1::SubjectAccessReviewSpec {
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/healthz".into()),
                    verb: Some("get".into()),
                }),
                user: Some("alice".into()),
                groups: vec!["devs".into()],
                extra: BTreeMap::from([(
                    "scopes".to_string(),
                    k8s_pb::api::authorization::v1::ExtraValue {
                        items: vec!["a".into()],
                    },
                )]),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(
            decode(&envelope("authorization.k8s.io/v1", "SubjectAccessReview", &subject)).expect("sar"),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
                   "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}, "user": "alice",
                            "groups": ["devs"], "extra": {"scopes": ["a"]}}})
        );
    }

    #[test]
    fn malformed_bodies_get_the_upstream_messages() {
        let cases: [(&[u8], &str); 3] = [
            (b"", "empty data"),
            (
                b"{\"kind\":\"Secret\"}",
                "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
            ),
            (&PREFIX, "empty body"),
        ];
        for (body, message) in cases {
            let error = decode_body(body, MEDIA_TYPE).expect_err("refused");
            assert_eq!((error.code(), error.to_string()), (400, message.to_string()));
        }
        let mut truncated = PREFIX.to_vec();
        truncated.extend([0x0a, 0x10, 0x0a]);
        let error = decode_body(&truncated, MEDIA_TYPE).expect_err("refused");
        assert_eq!(error.code(), 400);
        assert!(
            error
                .to_string()
                .starts_with("unable to decode the runtime.Unknown envelope of the protobuf body: "),
            "{error}"
        );
        let mut bad_raw = PREFIX.to_vec();
        bad_raw.extend(
            Unknown {
                type_meta: Some(TypeMeta {
                    api_version: Some("v1".into()),
                    kind: Some("Secret".into()),
                }),
                raw: Some(vec![0x0a, 0x05, 0x01]),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let error = decode_body(&bad_raw, MEDIA_TYPE).expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("unable to decode the protobuf v1 Secret in the request body: "),
            "{error}"
        );
    }

    #[test]
    fn other_kinds_and_media_types_get_the_real_415() {
        let deployment = k8s_pb::api::apps::v1::Deployment {
            metadata: kubectl_meta("web"),
            ..Default::default()
        };
        let expected = "the body of the request was in an unknown format - accepted media types include: \
                        application/json, application/yaml";
        let error = decode_body(&envelope("apps/v1", "Deployment", &deployment), MEDIA_TYPE).expect_err("refused");
        assert_eq!((error.code(), error.to_string()), (415, expected.to_string()));
        let error = decode_body(b"\x08\x01", "application/x-protobuf").expect_err("refused");
        assert_eq!((error.code(), error.to_string()), (415, expected.to_string()));
        // Parameters after the media type do not matter.
        let secret = Secret {
            metadata: kubectl_meta("s"),
            ..Default::default()
        };
        let decoded = decode_body(
            &envelope("v1", "Secret", &secret),
            "application/vnd.kubernetes.protobuf; charset=x",
        );
        assert_eq!(decoded.expect("decodes")["metadata"]["name"], "s");
    }
}
