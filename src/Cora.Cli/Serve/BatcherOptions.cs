using System.Threading.Channels;
using Microsoft.ML.Cora;

namespace Cora.Cli;

/// <summary>Limits of the request merger (defaults in <see cref="CoraDefaults"/>-style constants here, one place).</summary>
public sealed record BatcherOptions
{
    public const int DefaultMaxBatch = 64, DefaultMaxWaitMs = 5, DefaultQueue = 1024, DefaultDeadlineMs = 2000;
    /// <summary>Most rows per model call (requests are merged up to this).</summary>
    public int MaxBatch { get; init; } = DefaultMaxBatch;
    /// <summary>How long the first waiting request may wait for others to join its batch.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(DefaultMaxWaitMs);
    /// <summary>Requests waiting at most (more get 503).</summary>
    public int Queue { get; init; } = DefaultQueue;
    /// <summary>Per-request deadline; past it the request is answered with the CF score (the documented fallback).</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromMilliseconds(DefaultDeadlineMs);
}
