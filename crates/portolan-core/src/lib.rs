#![doc = include_str!("../README.md")]

pub mod action;
pub mod aggregation;
pub mod approval;
pub mod blueprint;
pub mod blueprint_check;
pub mod entity;
pub mod error;
pub mod export;
pub mod ident;
pub mod permissions;
pub mod scorecard;
pub mod search;
pub mod system;

pub use action::{CheckedInputs, EntityRef, JqSlot, check_action, check_inputs, jq_queries};
pub use blueprint::{Blueprint, PropType, Property, Relation};
pub use entity::{Entity, EntityInput, WriteMeta, WriteMode};
pub use error::{FieldError, FieldErrors};
