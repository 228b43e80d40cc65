//! The wire tests' helpers: moto and the scripted server of porter-identity-testkit, and the
//! port under test over the real SDK clients against moto.
#![allow(dead_code, unused_imports, unreachable_pub)] // each test binary uses its own subset

pub use porter_identity_testkit::moto::*;
pub use porter_identity_testkit::scripted::scripted;
pub use porter_identity_testkit::unique;

use porter_identity_aws::SdkApi;

/// The port under test, over the real SDK clients, against moto.
pub fn api() -> SdkApi {
    SdkApi::from_sdk_config(&sdk_config())
}
