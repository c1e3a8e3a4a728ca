namespace Cora.Cli;

/// <summary>Figures of one bounded load run: latency percentiles, throughput, and the integrity checks (nothing dropped or duplicated).</summary>
public sealed record LoadFigures(int Concurrency, int Requests, int PairsPerRequest, double P50Ms, double P95Ms, double P99Ms, double RowsPerSecond,
    int Answered, int Failed, int Mismatched, int FromCf, double Seconds);
