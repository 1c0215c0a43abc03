//! What the user receives: one dispatch event, with its sequence number.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A dispatch (op 0) from the gateway, delivered once.
///
/// The client hands over every dispatch whose sequence number the policy
/// accepted as new ([`Handled::Accepted`](reconnect_policy::Handled)):
/// events replayed after a resume that were already delivered are dropped,
/// so each sequence number of a session reaches the user at most once, in
/// order. READY and RESUMED are delivered too.
#[derive(Clone, Debug)]
pub struct DispatchEvent {
    /// `s`: the sequence number (`None` if the frame had none).
    pub seq: Option<u64>,
    /// `t`: the event name, e.g. `MESSAGE_CREATE`.
    pub name: String,
    /// `d`: the event's data, as the gateway sent it.
    pub data: Box<RawValue>,
}

impl DispatchEvent {
    /// Parses the data into a type of the user's.
    ///
    /// # Errors
    ///
    /// The data does not match `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.data.get())
    }
}
