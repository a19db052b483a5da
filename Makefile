# Container images of w4s (images/<name>/Dockerfile, described in docs/images.md).
#
#   make images                      build every image into the local engine (one platform)
#   make image-runner TAG=dev        build one
#   make push PLATFORM=linux/amd64,linux/arm64
#                                    build and push; writes build/images/<name>.json (buildx metadata, digests)
#   make digests                     print a Helm values file that pins the pushed digests
#   make constraints                 re-resolve images/constraints.txt (needs the package index, not Docker)
#
# Releases pin base images by digest too: PYTHON_DIGEST, CUDA_DIGEST and VLLM_DIGEST (sha256:<64 hex>) are
# passed to the Dockerfiles that use them, which then pull BASE:TAG@DIGEST.

REGISTRY ?= ghcr.io/w4s-project
# The project's version (pyproject.toml [project] version), which is also the chart's appVersion.
TAG ?= $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)
PLATFORM ?= linux/amd64
DOCKER ?= docker
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE ?= https://github.com/w4s-project/w4s
# Extra flags for every `docker buildx build` (e.g. --no-cache, --builder NAME, --cache-from ...).
BUILDX_FLAGS ?=
METADATA_DIR ?= build/images

IMAGES := operator runner sandbox trainer meta-agent

PYTHON_DIGEST ?=
CUDA_DIGEST ?=
VLLM_DIGEST ?=
# Which base-image digest each image takes (the ARG name in its Dockerfile).
digest_args_operator := PYTHON_DIGEST
digest_args_runner := PYTHON_DIGEST
digest_args_sandbox := PYTHON_DIGEST
digest_args_trainer := CUDA_DIGEST
digest_args_meta-agent := VLLM_DIGEST

$(foreach v,PYTHON_DIGEST CUDA_DIGEST VLLM_DIGEST,$(if $(and $($(v)),$(filter-out sha256:%,$($(v)))),\
  $(error $(v) must look like sha256:<64 hex digits>, not '$($(v))')))
ifeq ($(strip $(TAG)),)
  $(error TAG is empty: no version found in pyproject.toml; pass TAG=...)
endif

# The `docker buildx build` of image $(1), with output flags $(2).
define buildx
$(DOCKER) buildx build --platform $(PLATFORM) -f images/$(1)/Dockerfile -t $(REGISTRY)/$(1):$(TAG) \
	--build-arg VERSION=$(TAG) --build-arg REVISION=$(REVISION) --build-arg SOURCE=$(SOURCE) \
	$(foreach a,$(digest_args_$(1)),$(if $($(a)),--build-arg $(a)=$($(a)))) $(2) $(BUILDX_FLAGS) .
endef

.DEFAULT_GOAL := help
.PHONY: help images push digests refs constraints check-engine $(addprefix image-,$(IMAGES)) \
	$(addprefix push-,$(IMAGES))

help:
	@echo "w4s container images: $(IMAGES)"
	@echo ""
	@echo "  make images              build all images into the local engine ($(PLATFORM))"
	@echo "  make image-NAME          build one, e.g. make image-runner"
	@echo "  make push                build and push all images (multi-platform: PLATFORM=linux/amd64,linux/arm64)"
	@echo "  make push-NAME           build and push one"
	@echo "  make digests             print Helm values pinning the digests of the last push"
	@echo "  make refs                print the image references this configuration builds"
	@echo "  make constraints         re-resolve images/constraints.txt from pyproject.toml"
	@echo ""
	@echo "Variables: REGISTRY=$(REGISTRY) TAG=$(TAG) PLATFORM=$(PLATFORM)"
	@echo "           PYTHON_DIGEST / CUDA_DIGEST / VLLM_DIGEST=sha256:... pin the base images (releases)"
	@echo "           BUILDX_FLAGS='...' extra flags for docker buildx build"

# Fails early, with a reason, where no Docker engine (or no buildx) is reachable: the docker client alone can
# not build anything.
check-engine:
	@for v in "PYTHON_DIGEST=$(PYTHON_DIGEST)" "CUDA_DIGEST=$(CUDA_DIGEST)" "VLLM_DIGEST=$(VLLM_DIGEST)"; do \
	  d="$${v#*=}"; [ -z "$$d" ] || echo "$$d" | grep -Eq '^sha256:[0-9a-f]{64}$$' || \
	  { echo "make: $${v%%=*} must be sha256:<64 hex digits>, not '$$d'" >&2; exit 1; }; done
	@command -v $(DOCKER) >/dev/null 2>&1 || { echo "make: '$(DOCKER)' not found; install the Docker client with the buildx plugin" >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "make: no Docker engine reachable ('$(DOCKER) info' failed): start one, or point DOCKER_HOST / docker context at one" >&2; exit 1; }
	@$(DOCKER) buildx version >/dev/null 2>&1 || { echo "make: the docker buildx plugin is missing; install it (docker-buildx-plugin)" >&2; exit 1; }

images: $(addprefix image-,$(IMAGES))

push: $(addprefix push-,$(IMAGES))

# `--load` puts a single-platform build into the local engine; `--push` sends a (possibly multi-platform) build
# to REGISTRY and records its digest in $(METADATA_DIR)/NAME.json.
define image_rules
image-$(1): check-engine
	$$(call buildx,$(1),--load)

push-$(1): check-engine
	@mkdir -p $(METADATA_DIR)
	$$(call buildx,$(1),--push --metadata-file $(METADATA_DIR)/$(1).json)
endef
$(foreach i,$(IMAGES),$(eval $(call image_rules,$(i))))

digests:
	@$(PYTHON) images/digests.py --registry $(REGISTRY) --metadata-dir $(METADATA_DIR)

refs:
	@$(foreach i,$(IMAGES),echo $(REGISTRY)/$(i):$(TAG);)

constraints:
	$(PYTHON) images/lock.py
