# The Flock walkthrough (after Elixir Flock's Makefile), with flock-actix.
#
#   make node1     # terminal 1: node1@127.0.0.1 on 127.0.0.1:4001
#   make node2     # terminal 2: node2@127.0.0.1 on 127.0.0.1:4002
#   make node3     # terminal 3: node3@127.0.0.1 on 127.0.0.1:4003
#   make run       # start bird:1..bird:10 (make run num=50 for more)
#   make call      # call every bird; each replies with its node
#   make status    # members, each node's share of the load, birds per node
#   make stop      # stop every bird
#
# Ctrl-C a node to make it leave gracefully, or `kill -9` it to crash it,
# then `make call` again. Options: FLOCK_COOKIE, FLOCK_AE_INTERVAL_MS,
# RUST_LOG, ... (see `cargo run --example flock_node -- --help`).
#
#   make demo      # the self-contained demo: 3 node processes, a SIGKILL, a restart

CARGO ?= cargo
NODE = $(CARGO) run --release --quiet --example flock_node --
num ?= 10

N1 = 127.0.0.1:4001
N2 = 127.0.0.1:4002
N3 = 127.0.0.1:4003

.PHONY: node1 node2 node3 run call status stop demo build

build:
	$(CARGO) build --release --example flock_node --example demo

node1:
	$(NODE) --name node1@127.0.0.1 --listen $(N1) --seeds $(N2),$(N3) node

node2:
	$(NODE) --name node2@127.0.0.1 --listen $(N2) --seeds $(N1),$(N3) node

node3:
	$(NODE) --name node3@127.0.0.1 --listen $(N3) --seeds $(N1),$(N2) node

run:
	$(NODE) run --num $(num)

call:
	$(NODE) call

status:
	$(NODE) status

stop:
	$(NODE) stop

demo:
	$(CARGO) run --release --example demo
