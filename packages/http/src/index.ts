/**
 * @sluice/http: the resource client for one metered HTTP API.
 *
 * @since 0.1.0
 */
export {}
