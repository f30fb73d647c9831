//! Compiles `proto/` with protox (pure Rust, so no system `protoc` is needed)
//! and writes the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "proto/retake/v1/common.proto",
        "proto/retake/v1/run.proto",
        "proto/retake/v1/artifact.proto",
        "proto/retake/v1/workflow.proto",
        "proto/retake/v1/worker.proto",
        "proto/retake/v1/experiment.proto",
        "proto/retake/v1/error.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("retake_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
