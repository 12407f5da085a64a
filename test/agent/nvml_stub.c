/*
 * A stand-in libnvidia-ml.so.1 for the agent's tests: the NVML calls telemetry/nvml.py makes, on
 * fake GPUs. Built by test_telemetry.py with `cc -shared -fPIC -o libnvidia-ml.so.1 nvml_stub.c`.
 *
 * NVML_STUB_COUNT  number of GPUs (default 2)
 * NVML_STUB_STATE  file holding the power limits in mW, one per line; set limits are written back, so a
 *                  limit outlives the process like a real one does until the driver reloads
 *
 * GPU i draws min(limit, 100 W + 10 W * i). Its energy counter (mJ) is that power times the wall-clock
 * time, so counter differences divided by time give the power back. GPU 1 has no energy counter
 * (NVML_ERROR_NOT_SUPPORTED, like a pre-Volta GPU).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3

#define MAX_GPUS 8
#define DEFAULT_LIMIT_MW 300000u
#define MIN_LIMIT_MW 100000u
#define MAX_LIMIT_MW 350000u

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } nvmlMemory_t;

static int initialized = 0;
static unsigned int gpu_count = 2;
static unsigned int limits_mw[MAX_GPUS];

static void load_state(void) {
    const char *count = getenv("NVML_STUB_COUNT");
    gpu_count = count ? (unsigned int)atoi(count) : 2;
    if (gpu_count > MAX_GPUS) gpu_count = MAX_GPUS;
    for (unsigned int i = 0; i < MAX_GPUS; i++) limits_mw[i] = DEFAULT_LIMIT_MW;
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

/* Handles are 1-based indices disguised as pointers. */
static int index_of(nvmlDevice_t device) {
    intptr_t index = (intptr_t)device - 1;
    return (index >= 0 && index < (intptr_t)gpu_count) ? (int)index : -1;
}

#define DEVICE_OR_FAIL(device, index)                  \
    int index = index_of(device);                      \
    if (!initialized) return NVML_ERROR_UNINITIALIZED; \
    if (index < 0) return NVML_ERROR_INVALID_ARGUMENT;

static unsigned int power_mw(int index) {
    unsigned int demand = 100000u + 10000u * (unsigned int)index;
    return demand < limits_mw[index] ? demand : limits_mw[index];
}

int nvmlInit_v2(void) { load_state(); initialized = 1; return NVML_SUCCESS; }
int nvmlShutdown(void) { initialized = 0; return NVML_SUCCESS; }

const char *nvmlErrorString(int result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
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

int nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts) {
    DEVICE_OR_FAIL(device, index)
    *milliwatts = power_mw(index);
    return NVML_SUCCESS;
}

int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *millijoules) {
    DEVICE_OR_FAIL(device, index)
    if (index == 1) return NVML_ERROR_NOT_SUPPORTED;
    struct timeval now;
    gettimeofday(&now, NULL);
    double seconds = (double)now.tv_sec + now.tv_usec / 1e6;
    *millijoules = (unsigned long long)(power_mw(index) / 1000.0 * seconds * 1000.0);
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
    limits_mw[index] = limit;
    save_state();
    return NVML_SUCCESS;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    DEVICE_OR_FAIL(device, index)
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
