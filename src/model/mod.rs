//! The data model shared by every registry, the driver and the wire.

mod event;
mod event_type;
mod filter;
mod grant;
mod input;
mod lease;
mod record;
mod registration;
mod report;
mod scope;
mod status;
mod summary;

pub use event::*;
pub use event_type::*;
pub use filter::*;
pub use grant::*;
pub use input::*;
pub use lease::*;
pub use record::*;
pub use registration::*;
pub use report::*;
pub use scope::*;
pub use status::*;
pub use summary::*;
