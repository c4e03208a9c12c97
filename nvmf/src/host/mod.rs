//! The NVMe/TCP initiator: the `TCP` transport of `bdev_nvme_attach_controller`.

/// Register the transport with the bdev layer's attach RPC.
pub(crate) fn register() {}

/// Stop every attached controller.
pub(crate) fn stop_all() {}
