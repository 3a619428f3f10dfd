//! Every accepted form of the attribute.
use actix::prelude::*;
use flock_actix::{flock_bird, Bird, BirdKind, HatchError, Nest};
use serde::{Deserialize, Serialize};

mod msgs {
    #[derive(actix::Message, serde::Serialize, serde::Deserialize)]
    #[rtype(result = "u8")]
    pub struct Get<T>(pub T);
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Ping;

macro_rules! bird {
    ($name:ident) => {
        impl Actor for $name {
            type Context = Context<Self>;
        }
        impl Bird for $name {
            type Args = ();
            fn hatch(_: &str, _: (), _nest: &Nest) -> Result<Self, HatchError> {
                unimplemented!()
            }
        }
        impl Handler<Ping> for $name {
            type Result = ();
            fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
        }
        impl Handler<msgs::Get<u8>> for $name {
            type Result = u8;
            fn handle(&mut self, msgs::Get(x): msgs::Get<u8>, _: &mut Context<Self>) -> u8 {
                x
            }
        }
        impl Handler<msgs::Get<u16>> for $name {
            type Result = u8;
            fn handle(&mut self, _: msgs::Get<u16>, _: &mut Context<Self>) -> u8 {
                0
            }
        }
    };
}

#[flock_bird]
struct NoArgs;
bird!(NoArgs);

#[flock_bird()]
struct EmptyArgs;
bird!(EmptyArgs);

#[flock_bird(messages())]
struct EmptyList;
bird!(EmptyList);

#[flock_bird(messages(Ping,),)]
struct TrailingCommas;
bird!(TrailingCommas);

#[flock_bird(messages(crate::Ping, msgs::Get<u8>, msgs::Get<u16> = "Get.u16"), kind = "k")]
struct PathsGenericsAndKindLast;
bird!(PathsGenericsAndKindLast);

#[flock_bird(kind = "e")]
#[derive(Debug)]
enum EnumBird {
    A,
}
bird!(EnumBird);

#[allow(non_upper_case_globals)]
mod hygiene {
    use super::*;
    // Constants named like the generated locals must not capture them.
    const tag: &str = "x";
    const other: &str = "y";
    const addr: u8 = 0;
    const payload: u8 = 0;
    const ctx: u8 = 0;

    #[flock_bird(messages(Ping))]
    pub struct Shadowed;
    bird!(Shadowed);
}

fn main() {
    let _: &str = NoArgs::KIND;
    let _: &str = EnumBird::KIND;
    let _ = hygiene::Shadowed::KIND;
}
