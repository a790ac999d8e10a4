# The seed's interface, as make targets over the pnpm scripts (Node and npm are all they need).
#   make bench [PROMPTS=benchmarks/prompts_10.txt] [RUNS=3] [MODEL=models/demo] [IE_PRECISION=int4w]
#              [IE_REQUIRE_MODEL=1] [IE_BYTES_PER_TOKEN=...] [IE_STRIDE_BYTES=...] [PRECISION=fp32]
#   make convert HF_DIR=models/x/hf OUT_DIR=models/x [Q4_MAP=quant/q4_manifest.json]
#   make test
#   make bench-cuda   (ie is a CPU engine: says so and exits 2)
# Variables given on make's command line reach the scripts through the environment.
PNPM ?= npx -y pnpm@10.34.9
PROMPTS ?= benchmarks/prompts_10.txt
RUNS ?= 3
export PROMPTS RUNS

.PHONY: bench bench-cuda convert test build

build:
	$(PNPM) build

bench:
	$(PNPM) bench

bench-cuda:
	@echo "make bench-cuda: ie has no CUDA build; it is a CPU engine (AVX2 / AVX-512). Use make bench." >&2
	@exit 2

convert:
	@test -n "$(HF_DIR)" -a -n "$(OUT_DIR)" || { echo "make convert: give HF_DIR=DIR OUT_DIR=DIR [Q4_MAP=MANIFEST.json]" >&2; exit 2; }
	$(PNPM) build
	node scripts/hf_to_iebin --hf-dir "$(HF_DIR)" --out-dir "$(OUT_DIR)" $(if $(Q4_MAP),--q4-map "$(Q4_MAP)")

test:
	$(PNPM) install
	$(PNPM) test
