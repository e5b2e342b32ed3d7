//! Renders an analysis: the human summary and the JSON result.
pub mod json;
pub mod text;
