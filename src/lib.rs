//! The retake contract: everything generated from `proto/retake/v1/`.
//! The server, the CLI and the tests all speak through these types.

// Generated code follows the messages' shapes, not clippy's taste: a
// oneof with one large message (a worker's task) is what the wire says.
#[allow(clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("retake.v1");
}

/// The contract's package and version: what `retake --version` names.
pub const CONTRACT: &str = "retake.v1";

/// Encoded `FileDescriptorSet` of `proto/`, registered with server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/retake_descriptor.bin"));
