/**
 * How every headless Chromium of the project starts (tests, demo check, bench): Debian's chromium,
 * and the flags this offline machine needs (see shared/TESTING.md).
 */
export const CHROMIUM_PATH = process.env.WATTBENCH_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
