// The browser side of Wattbench's panels. Filled in by the live view and result viewer.
export {};
