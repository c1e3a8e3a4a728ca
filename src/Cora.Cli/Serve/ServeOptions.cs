namespace Cora.Cli;

/// <summary>How <c>cora serve</c> exposes the model: access, limits, and what it reports about the model.</summary>
public sealed record ServeOptions
{
    public const long DefaultMaxRequestBytes = 4 << 20;

    /// <summary>When set, every route but the probes, /metrics, the OpenAPI document and the page needs
    /// <c>Authorization: Bearer KEY</c> or <c>X-Api-Key: KEY</c> (401 otherwise).</summary>
    public string? ApiKey { get; init; }
    /// <summary>Largest request body accepted (413 above it).</summary>
    public long MaxRequestBytes { get; init; } = DefaultMaxRequestBytes;
    /// <summary>Requests per second per client address (429 above it); 0 = no limit.</summary>
    public int RatePerSecond { get; init; }
    /// <summary>The model's id in headers, /healthz, /readyz and /metrics: a SHA-256 prefix of the model file.</summary>
    public string ModelId { get; init; } = "in-memory";
    /// <summary>On a stop (SIGTERM), how long readiness fails while the service still answers, before it stops accepting: time for a
    /// load balancer to take it out of rotation (in Kubernetes a preStop pause does the same).</summary>
    public TimeSpan DrainDelay { get; init; }
    /// <summary>Seconds the model took to load and warm (reported by /metrics).</summary>
    public double LoadSeconds { get; init; }
}
