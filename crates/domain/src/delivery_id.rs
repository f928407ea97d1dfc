//! The id of one notification owed to a client app.

use crate::uuid_id::uuid_id;

uuid_id!(
    /// A notification's id: the `webhook-id` of every attempt to deliver it, so the client
    /// app can drop a repeat, and the key of its `notify` job.
    DeliveryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_is_its_uuid_on_the_wire_and_in_text() {
        let id = DeliveryId::generate();
        assert_eq!(id.to_string(), id.as_uuid().to_string());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<DeliveryId>(&json).unwrap(), id);
        assert!(DeliveryId::generate() > id, "ids sort by creation");
    }
}
