//! Every log line of a test binary, captured: a global `tracing`
//! subscriber at TRACE that writes into a buffer the test reads back.
//!
//! Only for a test binary of its own (see `secrets_in_logs.rs`): tracing
//! caches, process-wide, whether each call site is wanted, so the
//! subscriber must be global and installed before any call site is reached.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The log lines written so far, shared with the subscriber's writer.
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Installs the capturing subscriber as this process's global default.
    ///
    /// # Panics
    ///
    /// When a global subscriber is already installed: the binary must have
    /// only this one.
    pub(crate) fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only subscriber of this binary");
        captured
    }

    /// Everything logged so far, as text.
    ///
    /// # Panics
    ///
    /// When a line is not UTF-8.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("logs are UTF-8")
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
