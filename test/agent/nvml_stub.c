/*
 * A stand-in libnvidia-ml.so.1 for the agent's tests: the NVML calls telemetry/nvml.py makes, on
 * fake GPUs, with NVML's documented return codes (nvml.h). Built by test_telemetry.py with
 * `cc -shared -fPIC -o libnvidia-ml.so.1 nvml_stub.c`; with -DSTUB_OLD_DRIVER it is a driver from before
 * nvmlDeviceGetFieldValues and nvmlDeviceGetMigMode existed (the symbols are missing).
 *
 * NVML_STUB_COUNT   number of GPUs (default 2)
 * NVML_STUB_STATE   file holding the power limits in mW, one per line; set limits are written back, so a
 *                   limit outlives the process like a real one does until the driver reloads
 * NVML_STUB_CC      compute capability per GPU, comma-separated (default 9.0 each: Hopper). Decides what
 *                   the driver reports, as nvml.h documents it: nvmlDeviceGetPowerUsage is the power
 *                   averaged over 1 s above 8.0 (Ampere except GA100, and newer) and instantaneous up to
 *                   8.0; NVML_FI_DEV_POWER_AVERAGE exists only above 8.0; MIG only from 8.0 (Ampere).
 * NVML_STUB_INSTANT 1/0 per GPU (default 1): whether NVML_FI_DEV_POWER_INSTANT is supported; 0 answers it
 *                   with nvmlReturn NVML_ERROR_NOT_SUPPORTED, like a driver that does not have it
 * NVML_STUB_MIG     1/0 per GPU (default 0): current MIG mode (utilisation is then NOT_SUPPORTED)
 * NVML_STUB_WOBBLE_W  amplitude in W of a 0.5 s sine on top of each GPU's power (default 0): instant
 *                   readings move, the 1 s average (two whole periods) does not
 * NVML_STUB_HANDLE_ERROR  "INDEX:CODE": nvmlDeviceGetHandleByIndex_v2(INDEX) fails with CODE
 * NVML_STUB_LOST    file listing GPU indices, one per line, that have fallen off the bus while the file
 *                   exists: every call about them answers NVML_ERROR_GPU_IS_LOST
 *
 * NVML_STUB_LOAD_FILE  lines "EPOCH_SECONDS WATTS", in time order: from that time on every GPU demands WATTS
 *                   more (a workload starting and stopping); read at each call, so another process can write it
 * NVML_STUB_ENERGY_PERIOD_MS  the energy counter changes only every so many ms, as a driver's does (its value
 *                   is the energy at the last multiple of the period); unset: it changes at every call
 *
 * GPU i draws min(limit, 100 W + 10 W * i + load) (+ the wobble). Its energy counter (mJ) is the exact integral
 * of that power over wall-clock time, so counter differences divided by time give the mean power back (with a
 * load file: integrated in this process from its first reading on, at the limit in force at each moment).
 * GPU 1 has no energy counter (NVML_ERROR_NOT_SUPPORTED, like a pre-Volta GPU).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_UNKNOWN 999

#define NVML_VALUE_TYPE_DOUBLE 0
#define NVML_VALUE_TYPE_UNSIGNED_INT 1
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3

#define NVML_FI_DEV_POWER_AVERAGE 185
#define NVML_FI_DEV_POWER_INSTANT 186

#define MAX_GPUS 8
#define DEFAULT_LIMIT_MW 300000u
#define MIN_LIMIT_MW 100000u
#define MAX_LIMIT_MW 350000u
#define WOBBLE_PERIOD_S 0.5

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } nvmlMemory_t;

/* nvml.h's nvmlValue_t and nvmlFieldValue_t, member for member. */
typedef union {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;  /* nvmlValueType_t */
    int nvmlReturn; /* nvmlReturn_t */
    nvmlValue_t value;
} nvmlFieldValue_t;

static int initialized = 0;
static unsigned int gpu_count = 2;
static unsigned int limits_mw[MAX_GPUS];
static int cc_major[MAX_GPUS], cc_minor[MAX_GPUS];
static int has_instant[MAX_GPUS];
static int mig_mode[MAX_GPUS];
static double wobble_w = 0.0;
static int handle_error_index = -1, handle_error_code = 0;

/* Fills out[0..n) from a comma-separated list of integers; missing entries keep their value. */
static void parse_ints(const char *text, int *out, int n) {
    for (int i = 0; text && *text && i < n; i++) {
        char *end;
        long value = strtol(text, &end, 10);
        if (end != text) out[i] = (int)value;
        text = strchr(end, ',');
        if (text) text++;
    }
}

static void load_state(void) {
    const char *count = getenv("NVML_STUB_COUNT");
    gpu_count = count ? (unsigned int)atoi(count) : 2;
    if (gpu_count > MAX_GPUS) gpu_count = MAX_GPUS;
    for (unsigned int i = 0; i < MAX_GPUS; i++) {
        limits_mw[i] = DEFAULT_LIMIT_MW;
        cc_major[i] = 9;
        cc_minor[i] = 0;
        has_instant[i] = 1;
        mig_mode[i] = 0;
    }
    const char *cc = getenv("NVML_STUB_CC");
    for (int i = 0; cc && *cc && i < MAX_GPUS; i++) {
        if (sscanf(cc, "%d.%d", &cc_major[i], &cc_minor[i]) < 1) break;
        cc = strchr(cc, ',');
        if (cc) cc++;
    }
    parse_ints(getenv("NVML_STUB_INSTANT"), has_instant, MAX_GPUS);
    parse_ints(getenv("NVML_STUB_MIG"), mig_mode, MAX_GPUS);
    const char *wobble = getenv("NVML_STUB_WOBBLE_W");
    wobble_w = wobble ? atof(wobble) : 0.0;
    const char *handle_error = getenv("NVML_STUB_HANDLE_ERROR");
    if (!handle_error || sscanf(handle_error, "%d:%d", &handle_error_index, &handle_error_code) != 2)
        handle_error_index = -1;
    const char *path = getenv("NVML_STUB_STATE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    for (unsigned int i = 0; i < gpu_count; i++) {
        if (fscanf(f, "%u", &limits_mw[i]) != 1) break;
    }
    fclose(f);
}

static void save_state(void) {
    const char *path = getenv("NVML_STUB_STATE");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f) return;
    for (unsigned int i = 0; i < gpu_count; i++) fprintf(f, "%u\n", limits_mw[i]);
    fclose(f);
}

static int is_lost(int index) {
    const char *path = getenv("NVML_STUB_LOST");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return 0;
    int lost = 0, value;
    while (fscanf(f, "%d", &value) == 1) {
        if (value == index) lost = 1;
    }
    fclose(f);
    return lost;
}

/* Handles are 1-based indices disguised as pointers. */
static int index_of(nvmlDevice_t device) {
    intptr_t index = (intptr_t)device - 1;
    return (index >= 0 && index < (intptr_t)gpu_count) ? (int)index : -1;
}

#define DEVICE_OR_FAIL(device, index)                  \
    int index = index_of(device);                      \
    if (!initialized) return NVML_ERROR_UNINITIALIZED; \
    if (index < 0) return NVML_ERROR_INVALID_ARGUMENT; \
    if (is_lost(index)) return NVML_ERROR_GPU_IS_LOST;

static double now_s(void) {
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)now.tv_sec + now.tv_usec / 1e6;
}

/* The load file's steps: from times[k] on, loads_w[k] more watts. */
#define MAX_LOAD_STEPS 4096
static double load_times[MAX_LOAD_STEPS], load_watts[MAX_LOAD_STEPS];

static int read_load_steps(void) {
    const char *path = getenv("NVML_STUB_LOAD_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return 0;
    int n = 0;
    while (n < MAX_LOAD_STEPS && fscanf(f, "%lf %lf", &load_times[n], &load_watts[n]) == 2) n++;
    fclose(f);
    return n;
}

static unsigned int capped_mw(int index, double load_w) {
    double demand = 100000.0 + 10000.0 * index + 1000.0 * load_w;
    return demand < limits_mw[index] ? (unsigned int)demand : limits_mw[index];
}

/* Power before the wobble, in mW, at time t. */
static unsigned int base_mw_at(int index, double t) {
    int n = read_load_steps();
    double load_w = 0.0;
    for (int k = 0; k < n && load_times[k] <= t; k++) load_w = load_watts[k];
    return capped_mw(index, load_w);
}

static unsigned int base_mw(int index) { return capped_mw(index, 0.0); }

/* The exact integral in mJ of the power before the wobble over [t0, t1], at the present limit. */
static double base_integral_mj(int index, double t0, double t1) {
    int n = read_load_steps();
    double total = 0.0, from = t0, load_w = 0.0;
    for (int k = 0; k < n; k++) {
        if (load_times[k] <= t0) { load_w = load_watts[k]; continue; }
        if (load_times[k] >= t1) break;
        total += capped_mw(index, load_w) * (load_times[k] - from);
        from = load_times[k];
        load_w = load_watts[k];
    }
    return total + capped_mw(index, load_w) * (t1 - from);
}

/* With a load file: the energy integrated so far in this process, and up to when. */
static double energy_acc_mj[MAX_GPUS], energy_acc_t[MAX_GPUS];
static int energy_acc_started[MAX_GPUS];

static void advance_energy(int index, double t) {
    if (!energy_acc_started[index]) {
        energy_acc_mj[index] = base_mw(index) * t;  /* as without a load file until the first reading */
        energy_acc_t[index] = t;
        energy_acc_started[index] = 1;
    } else if (t > energy_acc_t[index]) {
        energy_acc_mj[index] += base_integral_mj(index, energy_acc_t[index], t);
        energy_acc_t[index] = t;
    }
}

static const double TWO_PI = 6.283185307179586;

static double instant_mw(int index, double t) {
    return base_mw_at(index, t) + 1000.0 * wobble_w * sin(TWO_PI * t / WOBBLE_PERIOD_S);
}

/* The mean over the second before t: two whole periods of the wobble, so the base power's mean. */
static double average_mw(int index, double t) { return base_integral_mj(index, t - 1.0, t) / 1.0; }

/* Averaged power on Ampere (except GA100) and newer, i.e. above compute capability 8.0. */
static int averages_power(int index) { return cc_major[index] * 10 + cc_minor[index] > 80; }

int nvmlInit_v2(void) { load_state(); initialized = 1; return NVML_SUCCESS; }
int nvmlShutdown(void) { initialized = 0; return NVML_SUCCESS; }

const char *nvmlErrorString(int result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    snprintf(version, length, "550.54.stub");
    return NVML_SUCCESS;
}

int nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *count = gpu_count;
    return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    if ((int)index == handle_error_index) return handle_error_code;
    if (is_lost((int)index)) return NVML_ERROR_GPU_IS_LOST;
    *device = (nvmlDevice_t)(intptr_t)(index + 1);
    return NVML_SUCCESS;
}

int nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_OR_FAIL(device, index)
    snprintf(name, length, "NVIDIA Stub GPU %d", index);
    return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_OR_FAIL(device, index)
    snprintf(uuid, length, "GPU-00000000-0000-0000-0000-stub%08d", index);
    return NVML_SUCCESS;
}

int nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    DEVICE_OR_FAIL(device, index)
    *major = cc_major[index];
    *minor = cc_minor[index];
    return NVML_SUCCESS;
}

int nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts) {
    DEVICE_OR_FAIL(device, index)
    double t = now_s();
    double mw = averages_power(index) ? average_mw(index, t) : instant_mw(index, t);
    *milliwatts = (unsigned int)(mw + 0.5);
    return NVML_SUCCESS;
}

#ifndef STUB_OLD_DRIVER
int nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount, nvmlFieldValue_t *values) {
    DEVICE_OR_FAIL(device, index)
    if (!values || valuesCount < 0) return NVML_ERROR_INVALID_ARGUMENT;
    double t = now_s();
    for (int k = 0; k < valuesCount; k++) {
        nvmlFieldValue_t *v = &values[k];
        v->timestamp = (long long)(t * 1e6);
        v->latencyUsec = 0;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
        if (v->fieldId == NVML_FI_DEV_POWER_INSTANT) {
            v->nvmlReturn = has_instant[index] ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
            v->value.uiVal = (unsigned int)(instant_mw(index, t) + 0.5);
        } else if (v->fieldId == NVML_FI_DEV_POWER_AVERAGE) {
            v->nvmlReturn = averages_power(index) ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
            v->value.uiVal = (unsigned int)(average_mw(index, t) + 0.5);
        } else {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; /* a field this stub does not model */
        }
    }
    return NVML_SUCCESS;
}

int nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode) {
    DEVICE_OR_FAIL(device, index)
    if (!currentMode || !pendingMode) return NVML_ERROR_INVALID_ARGUMENT;
    if (cc_major[index] < 8) return NVML_ERROR_NOT_SUPPORTED; /* "For Ampere or newer fully supported devices" */
    *currentMode = (unsigned int)mig_mode[index];
    *pendingMode = (unsigned int)mig_mode[index];
    return NVML_SUCCESS;
}
#endif

int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *millijoules) {
    DEVICE_OR_FAIL(device, index)
    if (index == 1) return NVML_ERROR_NOT_SUPPORTED;
    double t = now_s();
    const char *period = getenv("NVML_STUB_ENERGY_PERIOD_MS");
    double period_s = period ? atof(period) / 1000.0 : 0.0;
    if (period_s > 0) t = floor(t / period_s) * period_s;  /* the value of the counter's last update */
    /* the integral of base + A sin(2 pi t / P): base t + A P / (2 pi) (1 - cos(2 pi t / P)) */
    double wobble_mj = 1000.0 * wobble_w * WOBBLE_PERIOD_S / TWO_PI * (1.0 - cos(TWO_PI * t / WOBBLE_PERIOD_S));
    double base_mj = base_mw(index) * t;
    if (getenv("NVML_STUB_LOAD_FILE")) {
        advance_energy(index, t);
        base_mj = energy_acc_mj[index];
    }
    *millijoules = (unsigned long long)(base_mj + wobble_mj);
    return NVML_SUCCESS;
}

int nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
    DEVICE_OR_FAIL(device, index)
    *limit = limits_mw[index];
    return NVML_SUCCESS;
}

int nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, unsigned int *limit) {
    DEVICE_OR_FAIL(device, index)
    *limit = DEFAULT_LIMIT_MW;
    return NVML_SUCCESS;
}

int nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *min_limit,
                                                 unsigned int *max_limit) {
    DEVICE_OR_FAIL(device, index)
    *min_limit = MIN_LIMIT_MW;
    *max_limit = MAX_LIMIT_MW;
    return NVML_SUCCESS;
}

int nvmlDeviceSetPowerManagementLimit(nvmlDevice_t device, unsigned int limit) {
    DEVICE_OR_FAIL(device, index)
    if (limit < MIN_LIMIT_MW || limit > MAX_LIMIT_MW) return NVML_ERROR_INVALID_ARGUMENT;
    /* the energy so far at the old limit, before the new one applies */
    if (getenv("NVML_STUB_LOAD_FILE") && energy_acc_started[index]) advance_energy(index, now_s());
    limits_mw[index] = limit;
    save_state();
    return NVML_SUCCESS;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    DEVICE_OR_FAIL(device, index)
    /* nvml.h: "On MIG-enabled GPUs, querying device utilization rates is not currently supported." */
    if (mig_mode[index]) return NVML_ERROR_NOT_SUPPORTED;
    utilization->gpu = 42;
    utilization->memory = 17;
    return NVML_SUCCESS;
}

int nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
    DEVICE_OR_FAIL(device, index)
    (void)type;
    *clock = 1410;
    return NVML_SUCCESS;
}

int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temperature) {
    DEVICE_OR_FAIL(device, index)
    (void)sensor;
    *temperature = 45 + (unsigned int)index;
    return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_OR_FAIL(device, index)
    memory->total = 80ull * 1024 * 1024 * 1024;
    memory->used = 1ull * 1024 * 1024 * 1024;
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

/* Not NVML: the C compiler's layout of nvmlFieldValue_t (sizeof, then each member's offset), for the test
 * that the agent's ctypes struct matches it byte for byte. */
int wattbenchStubFieldValueLayout(unsigned long long *out) {
    out[0] = sizeof(nvmlFieldValue_t);
    out[1] = offsetof(nvmlFieldValue_t, fieldId);
    out[2] = offsetof(nvmlFieldValue_t, scopeId);
    out[3] = offsetof(nvmlFieldValue_t, timestamp);
    out[4] = offsetof(nvmlFieldValue_t, latencyUsec);
    out[5] = offsetof(nvmlFieldValue_t, valueType);
    out[6] = offsetof(nvmlFieldValue_t, nvmlReturn);
    out[7] = offsetof(nvmlFieldValue_t, value);
    return 8;
}
