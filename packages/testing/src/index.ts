/**
 * @sluice/testing: a MockProvider and test layers.
 *
 * @since 0.1.0
 */
export {}
