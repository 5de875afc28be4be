//! Guard policies in Rust: implement [`Guard`] (every check defaults to allow) and export it
//! with [`export_guard!`](crate::export_guard).
//!
//! ```ignore
//! use moat_guest::guard::{export_guard, Call, Guard, GuardInfo, Verdict};
//!
//! struct NoDeletes;
//!
//! impl Guard for NoDeletes {
//!     fn info() -> GuardInfo {
//!         GuardInfo { name: "no-deletes".into(), description: "Asks before deleting.".into() }
//!     }
//!     fn check_effect(call: &Call, effect: &Effect) -> Verdict {
//!         match effect.kind { EffectKind::Delete => Verdict::Escalate("a deletion".into()), _ => Verdict::Allow }
//!     }
//! }
//!
//! export_guard!(NoDeletes);
//! ```

/// Bindings generated from the `guard-plugin` world of `wit/`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "guard-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_guard_plugin",
        default_bindings_module: "::moat_guest::guard::bindings",
        runtime_path: "::moat_guest::__wit_bindgen::rt",
    });
}

pub use crate::export_guard;
pub use bindings::exports::moat::plugin::guard::{Call, Effect, GuardInfo, HistoryEntry, Verdict};
/// Read-only ground truth: `facts::query("orders", "SELECT ...", &[])`, `facts::search(..)`.
pub use bindings::moat::plugin::facts;
pub use bindings::moat::plugin::types::EffectKind;

/// A guard policy. Each check runs on a fresh instance, with its own budgets; a check that
/// panics or runs out of budget denies the call (fail closed).
pub trait Guard {
    /// The guard's name and what it checks.
    fn info() -> GuardInfo;

    /// Before the call runs.
    fn check_call(call: &Call) -> Verdict {
        let _ = call;
        Verdict::Allow
    }

    /// Before each effect of the call happens.
    fn check_effect(call: &Call, effect: &Effect) -> Verdict {
        let _ = (call, effect);
        Verdict::Allow
    }

    /// After the call, on its output (JSON text), before anything is committed.
    fn check_result(call: &Call, output: &str) -> Verdict {
        let _ = (call, output);
        Verdict::Allow
    }
}

/// Exports a type implementing [`Guard`] as this component's `guard` interface.
#[macro_export]
macro_rules! export_guard {
    ($guard:ty) => {
        struct __MoatGuard;

        impl $crate::guard::bindings::exports::moat::plugin::guard::Guest for __MoatGuard {
            fn describe() -> $crate::guard::GuardInfo {
                $crate::report_panics();
                <$guard as $crate::guard::Guard>::info()
            }
            fn check_call(call: $crate::guard::Call) -> $crate::guard::Verdict {
                $crate::report_panics();
                <$guard as $crate::guard::Guard>::check_call(&call)
            }
            fn check_effect(
                call: $crate::guard::Call,
                effect: $crate::guard::Effect,
            ) -> $crate::guard::Verdict {
                $crate::report_panics();
                <$guard as $crate::guard::Guard>::check_effect(&call, &effect)
            }
            fn check_result(
                call: $crate::guard::Call,
                output: ::std::string::String,
            ) -> $crate::guard::Verdict {
                $crate::report_panics();
                <$guard as $crate::guard::Guard>::check_result(&call, &output)
            }
        }

        $crate::guard::bindings::__export_guard_plugin!(__MoatGuard);
    };
}
