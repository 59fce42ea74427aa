//! The delivery service's configuration.

/// Settings only the delivery service has: how long the simulated courier takes.
#[derive(Clone, Debug, clap::Args)]
pub struct DeliverySettings {
    /// From confirmed to dispatched.
    #[arg(
        long = "delivery-dispatch-delay-ms",
        env = "DELIVERY_DISPATCH_DELAY_MS",
        default_value_t = 2000
    )]
    pub dispatch_delay_ms: u64,
    /// From dispatched to delivered.
    #[arg(
        long = "delivery-deliver-delay-ms",
        env = "DELIVERY_DELIVER_DELAY_MS",
        default_value_t = 5000
    )]
    pub deliver_delay_ms: u64,
    /// The timer takes steps on a grid of this many milliseconds: a step is up to this late, and
    /// the steps falling due within one slot share a transaction instead of one each.
    #[arg(
        long = "delivery-timer-slot-ms",
        env = "DELIVERY_TIMER_SLOT_MS",
        default_value_t = 10
    )]
    pub timer_slot_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        larder_bus::config::declared_defaults()
    }
}

/// Everything the delivery service needs; tests build it in code.
pub type Config = larder_bus::config::ServiceConfig<DeliverySettings>;
