//! How a clawctl command fails, and the exit status each failure gives.

use crate::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// clawd's answer, or no answer.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Something given on this side: a file, a password, the terminal.
    #[error("{0}")]
    Input(String),
    /// The command ran and found a problem (exit 1, message already shown).
    #[error("{0}")]
    Failed(String),
}

impl CtlError {
    /// 1 error, 3 clawd unreachable, 4 permission denied (2, usage, is clap's).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(c) => c.exit_code(),
            Self::Input(_) | Self::Failed(_) => 1,
        }
    }
}
