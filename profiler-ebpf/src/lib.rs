#![no_std]
// The programs live in the `chokepoint` binary target (src/main.rs). This library target exists
// so the user-space crate can name this package as a build-dependency and be rebuilt when it
// changes.
