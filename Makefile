# The user's commands. Each target is a thin call to a Python command; settings come from the environment
# (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, KAFKA_BOOTSTRAP_SERVERS, CONNECT_URL, STACK_HOME).
PYTHON ?= python3
SPLIT ?=
RATE ?=
IDX_DIR ?=
LIMIT ?=
BATCH ?=
DEMO_RATE ?= 50
STATE = $${STACK_HOME:-.stack}

LOADER_ARGS = $(if $(SPLIT),--split $(SPLIT)) $(if $(RATE),--rate $(RATE)) $(if $(IDX_DIR),--idx-dir $(IDX_DIR)) \
              $(if $(LIMIT),--limit $(LIMIT)) $(if $(BATCH),--batch $(BATCH))

.PHONY: setup up down status load-mnist train evaluate demo test test-java test-python lint bench soak

setup:  ## install system packages, the Python package with dev extras, and assemble the jars
	bash stack/install-system-packages.sh
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(PYTHON) -m stack assemble

up:
	$(PYTHON) -m stack up

down:
	$(PYTHON) -m stack down

status:
	$(PYTHON) -m stack status

load-mnist:
	$(PYTHON) -m loader $(LOADER_ARGS)

train:
	$(PYTHON) -m consumer.train

evaluate:
	$(PYTHON) -m consumer.evaluate

demo: setup  ## fresh clone -> live accuracy: stack up, load + train, evaluate while the test split streams in
	$(PYTHON) -m stack up
	$(PYTHON) -m loader --split train
	$(PYTHON) -m consumer.train
	@mkdir -p $(STATE)/logs
	@echo "Streaming the test split into PostgreSQL at $(DEMO_RATE) rows/s (log: $(STATE)/logs/demo-loader.log)."
	@echo "Each line is one batch of rows that went PostgreSQL -> Debezium -> Kafka -> the model:"
	@( sleep 2; $(PYTHON) -m loader --split test --rate $(DEMO_RATE) --no-progress \
	    > $(STATE)/logs/demo-loader.log 2>&1 ) & \
	$(PYTHON) -m consumer.evaluate --idle-timeout 15
	@echo "The stack is still running (python -m stack status). Stop it with: python -m stack down"

bench:  ## benchmarks against the running native stack (python -m stack up first); JSON in bench/results/
	$(PYTHON) -m bench.loader_bench
	$(PYTHON) -m bench.latency_bench
	$(PYTHON) -m bench.throughput_bench
	$(PYTHON) -m bench.decode_bench
	$(PYTHON) -m bench.train_bench
	$(PYTHON) -m bench.report

soak:  ## 500k rows through the running stack with memory sampled (minutes; not part of CI)
	$(PYTHON) -m bench.soak

test: test-java test-python  ## what CI runs

test-java:
	mvn -B -q -f debezium/mnist-smt/pom.xml verify

test-python:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
