namespace Microsoft.ML.Cora.Data;

/// <summary>
/// Seeded randomness, one formula: each use names its purpose, and (seed, purpose, round) gives its own stream, so the split,
/// the samples and the epoch orders never share or shift each other's random numbers.
/// </summary>
internal static class Seeded
{
    /// <summary>A System.Random for one purpose (and round, e.g. the epoch).</summary>
    public static Random Random(long seed, string purpose, int round = 0)
    {
        ulong h = 14695981039346656037UL;                        // FNV-1a over the purpose, mixed with seed and round
        foreach (char c in purpose) { h ^= c; h *= 1099511628211UL; }
        h ^= (ulong)seed * 0x9E3779B97F4A7C15UL;
        h ^= (ulong)(uint)round * 0xC2B2AE3D27D4EB4FUL;
        h ^= h >> 31;
        return new Random(unchecked((int)(h ^ (h >> 32))));
    }

    /// <summary>A random permutation of 0..n-1.</summary>
    public static int[] Permutation(int n, long seed, string purpose, int round = 0)
    {
        var idx = Enumerable.Range(0, n).ToArray();
        Random(seed, purpose, round).Shuffle(idx);
        return idx;
    }

    /// <summary><paramref name="n"/> rows drawn without replacement (the "train-sample" stream), in their original order.</summary>
    public static List<T> Sample<T>(IReadOnlyList<T> rows, int n, long seed)
    {
        var idx = Permutation(rows.Count, seed, "train-sample");
        return idx.Take(n).OrderBy(i => i).Select(i => rows[i]).ToList();
    }
}
