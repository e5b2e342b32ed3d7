//! Renders an analysis: the human summary, the JSON, the Markdown memo and the diff of two
//! runs. Renderers read the analysis only, never the recording.
pub mod cli;
pub mod diff;
pub mod figures;
pub mod html;
pub mod json;
pub mod memo;
pub mod text;

/// A recorded lab fixture (profiler/tests/fixtures/lab), analysed.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> crate::analysis::Analysis {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lab")
        .join(format!("{name}.rec"));
    let recording = crate::recording::Recording::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    crate::analysis::analyze(&recording, &[])
}
