# What users type. CMake does the building; this file only names the steps.
#   make            build everything into build/ (programs in build/bin/)
#   make run        build the programs, the update page and the admin UI; start aloftd and three simulated devices
#   make check      install missing Debian packages (scripts/deps.sh), build, run every test
#   make size       the core and the agent cross-compiled for ESP32-C3 and Cortex-M4: sizes, stack, budgets
#   make bench      build and run the benchmarks (bench/run.sh, under valgrind)
#   make sanitize   build with ASan+UBSan in build-asan/ and run every test there
#   make fuzz       every fuzz harness for FUZZ_TIME seconds (600) under ASan+UBSan; keeps new corpus inputs
#   make install    build and install (PREFIX=/usr/local, DESTDIR= for staging): programs, admin UI,
#                   man pages, bash completion, systemd unit, configuration file
#   make deb        build and make a Debian package: build/aloft_<version>_<arch>.deb
#   make clean      remove every build directory

BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE      ?= cmake
CTEST      ?= ctest
FUZZ_TIME  ?= 600

.PHONY: all build www run check install deb size bench sanitize fuzz clean

all: build

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) --parallel $(JOBS)

# The device's update page (npm + vite) as a LittleFS image for a www slot,
# and aloftd's admin UI into $(BUILD)/admin/, where aloftd looks by default.
www: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) --parallel $(JOBS) --target aloft
	web/device/build.sh $(BUILD)/bin/aloft $(BUILD)/www.bin
	web/admin/build.sh $(BUILD)/admin

# make run builds only the three programs and the two web UIs. The script is
# exec'd: Ctrl-C ends it with status 0, and make adds no "Interrupt" line.
run:
	scripts/deps.sh
	$(MAKE) --no-print-directory -s $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) --parallel $(JOBS) --target aloft aloftd aloft-node
	$(MAKE) --no-print-directory www
	BUILD=$(BUILD) exec scripts/run.sh

check:
	scripts/deps.sh
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory www
	$(CTEST) --test-dir $(BUILD) --output-on-failure --parallel 2

install:
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory www
	DESTDIR=$(DESTDIR) $(CMAKE) --install $(BUILD) --prefix $(PREFIX)

deb:
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory www
	scripts/deb.sh $(BUILD)

size:
	scripts/size.sh

bench: build
	bench/run.sh $(BUILD)

$(ASAN_BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DALOFT_SANITIZE=ON

sanitize: $(ASAN_BUILD)/CMakeCache.txt
	$(CMAKE) --build $(ASAN_BUILD) --parallel $(JOBS)
	$(CTEST) --test-dir $(ASAN_BUILD) --output-on-failure --parallel 2

# Long fuzzing (CTest's fuzz_smoke is the short run): each harness for
# FUZZ_TIME seconds, no run limit, two at a time; inputs that found new
# coverage are merged into tests/fuzz/corpus/<harness>/ to commit.
fuzz: build
	FUZZ_TIME=$(FUZZ_TIME) FUZZ_RUNS=-1 FUZZ_KEEP=1 tests/fuzz/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-size
