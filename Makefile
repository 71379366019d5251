# The user's commands. Each target is a thin call to a Python command; settings come from the environment
# (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, KAFKA_BOOTSTRAP_SERVERS, CONNECT_URL, STACK_HOME).
# Every command runs in the project's virtual environment, made by `make setup` (PYTHON= picks its interpreter);
# make demo and make test each run the set-up they need first, so either can be a fresh clone's first command.
VENV ?= .venv
# The PyFlink scorer's own environment: apache-flink 2.3.0 needs pyarrow < 17, the spark extra pyarrow >= 18.
FLINK_VENV ?= .venv-flink
PY = $(VENV)/bin/python
SPLIT ?=
RATE ?=
IDX_DIR ?=
LIMIT ?=
BATCH ?=
DEMO_RATE ?= 50
# The dataset the demo and the model-side targets use (datasets/<name>.toml): mnist, iris, or one of your own.
DATASET ?= mnist
DS = --dataset $(DATASET)
# The demo's test split streams in at DEMO_RATE rows/s: iris's 30 test rows stream at 5 a second.
DEMO_STREAM_RATE = $(if $(filter mnist,$(DATASET)),$(DEMO_RATE),5)
STATE = $${STACK_HOME:-.stack}

LOADER_ARGS = $(if $(SPLIT),--split $(SPLIT)) $(if $(RATE),--rate $(RATE)) $(if $(IDX_DIR),--idx-dir $(IDX_DIR)) \
              $(if $(LIMIT),--limit $(LIMIT)) $(if $(BATCH),--batch $(BATCH))

.PHONY: setup setup-test setup-engines setup-spark setup-flink up down status load-mnist train train-follow evaluate \
        predict dashboard demo demo-drift test test-java test-python lint bench soak fresh-machine

setup:  ## what the demo needs: system packages (root or sudo), the project's .venv with the package, the jars
	bash stack/install-system-packages.sh
	bash stack/make-venv.sh $(VENV)
	$(PY) -m stack assemble

setup-test: setup  ## what only the tests need on top: Chromium and fonts (dashboard screenshots), the dev extras
	bash stack/install-system-packages.sh --test
	bash stack/make-venv.sh $(VENV) dev

setup-engines:  ## opt-in: Debezium Server's distribution (~700 MB; STACK_ENGINE=server needs a JDK 21+)
	$(PY) -m stack assemble --engine server

setup-spark:  ## opt-in: PySpark and Spark's Kafka connector jars (python -m consumer.spark_predict)
	bash stack/make-venv.sh $(VENV) spark
	$(PY) -m stack.assemble --part spark

setup-flink:  ## opt-in: PyFlink in its own .venv-flink and Flink's Kafka connector jar (consumer.flink_predict)
	bash stack/make-venv.sh $(FLINK_VENV) flink
	$(FLINK_VENV)/bin/python -c "import tensorflow, pyflink"
	$(PY) -m stack.assemble --part flink

up:
	$(PY) -m stack up

down:
	$(PY) -m stack down

status:
	$(PY) -m stack status

load-mnist:
	$(PY) -m loader $(DS) $(LOADER_ARGS)

train:
	$(PY) -m consumer.train $(DS)

train-follow:  ## keep learning from the training topic (checkpoints, versions, TensorBoard) until Ctrl-C
	$(PY) -m consumer.train $(DS) --follow

evaluate:
	$(PY) -m consumer.evaluate $(DS) --run-dir

predict:  ## one prediction a row of the test topic into <dataset>.predictions -> <dataset>_predictions (exactly once)
	$(PY) -m consumer.predict $(DS)

dashboard:  ## TensorBoard over runs/ on http://127.0.0.1:$TENSORBOARD_PORT (default 6006)
	$(PY) -m consumer.dashboard

demo-drift:  ## on the running stack: digits, then the same digits inverted; train --follow drifts and recovers
	$(if $(SCREENSHOT),bash stack/install-system-packages.sh --test)
	$(PY) -m consumer.drift_demo $(if $(SCREENSHOT),--screenshot $(SCREENSHOT))

demo: setup  ## fresh clone -> live accuracy: stack up, load + train, evaluate while the test split streams in
	$(PY) -m stack up
	$(if $(filter-out mnist,$(DATASET)),$(PY) -m stack add $(DATASET))
	$(PY) -m loader $(DS) --split train
	$(PY) -m consumer.train $(DS)
	@mkdir -p $(STATE)/logs
	@echo "Streaming the test split into PostgreSQL at $(DEMO_STREAM_RATE) rows/s (log: $(STATE)/logs/demo-loader.log)."
	@echo "Each line is one batch of rows that went PostgreSQL -> Debezium -> Kafka -> the model:"
	@( sleep 2; $(PY) -m loader $(DS) --split test --rate $(DEMO_STREAM_RATE) --no-progress \
	    > $(STATE)/logs/demo-loader.log 2>&1 ) & \
	$(PY) -m consumer.evaluate $(DS) --idle-timeout 15
	@echo "Scoring every test row and writing the predictions back to PostgreSQL (log: $(STATE)/logs/demo-predict.log):"
	@$(PY) -m consumer.predict $(DS) --idle-timeout 5 > $(STATE)/logs/demo-predict.log
	@tail -n 1 $(STATE)/logs/demo-predict.log
	$(PY) -m consumer.show_predictions $(DS) --wait 30
	@echo "The stack is still running (python -m stack status). Stop it with: python -m stack down"

bench:  ## benchmarks against the running native stack (python -m stack up first); JSON in bench/results/
	$(PY) -m bench.loader_bench
	$(PY) -m bench.latency_bench
	$(PY) -m bench.delivery_bench
	$(PY) -m bench.reading_bench
	$(PY) -m bench.pipeline_bench
	$(PY) -m bench.prediction_latency_bench
	$(PY) -m bench.predict_scaling_bench
	$(PY) -m bench.predict_throughput_bench
	$(PY) -m bench.fetch_wait_bench
	$(PY) -m bench.stall_bench
	$(PY) -m bench.train_bench
	$(PY) -m bench.train_stream_bench
	$(PY) -m bench.freshness_bench
	$(PY) -m bench.report

soak:  ## 500k rows through the running stack with memory sampled (minutes; not part of CI)
	$(PY) -m bench.soak

# The set-up runs first and alone (never beside the tests under make -j), so make test works on a fresh clone.
test: setup-test  ## what CI runs: the set-up for tests, then the transform's mvn verify and pytest
	@$(MAKE) --no-print-directory test-java test-python

test-java:
	mvn -B -q -f debezium/mnist-smt/pom.xml verify

test-python:  ## pytest alone (the dev extras are made sure of: a no-op once installed)
	bash stack/make-venv.sh $(VENV) dev
	$(PY) -m pytest

lint:
	bash stack/make-venv.sh $(VENV) dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

fresh-machine:  ## the README's commands on stock Debian 12 and 13 made with debootstrap (root; about 30 min)
	bash tests/fresh_machine/run.sh
