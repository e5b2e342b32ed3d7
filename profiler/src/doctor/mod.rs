//! Placeholder until the doctor module lands: checks only that we are root.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub ok: bool,
    pub detail: String,
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub base_layer_ok: bool,
}

impl Report {
    pub fn missing_required(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.required && !c.ok).collect()
    }
}

pub fn inspect(_mount_tracefs: bool) -> Report {
    let root = nix::unistd::geteuid().is_root();
    let checks = vec![Check {
        id: "privilege.root".into(),
        ok: root,
        detail: if root {
            "euid 0".into()
        } else {
            "not root".into()
        },
        required: true,
    }];
    Report {
        base_layer_ok: root,
        checks,
    }
}

pub mod cli {
    #[derive(Debug, clap::Args)]
    pub struct DoctorArgs {
        #[arg(long)]
        pub json: bool,
    }

    pub fn run(_args: &DoctorArgs) -> anyhow::Result<i32> {
        anyhow::bail!("doctor is not implemented yet")
    }
}
