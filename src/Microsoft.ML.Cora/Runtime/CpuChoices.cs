using System.Collections.Concurrent;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// The CPU-dependent switches Cora decides by measurement (each takes a few tens of milliseconds the first time): the query
/// generator's product dtype for <c>auto</c>, and libtorch's attention or Cora's narrow-head kernel. A decision is kept for the
/// process and in a small cache file (<see cref="CachePath"/>) keyed by CPU model, thread count, TorchSharp and Cora versions, so
/// every process on a machine makes the same choice (a resumed run computes as the run it resumes) and pays for the timing once.
/// <c>cora doctor</c> prints each decision with its timings. Set <see cref="Override"/> to fix a decision (tests, or a user who
/// has measured their own machine).
/// </summary>
internal static class CpuChoices
{
    /// <summary>Names of the switches, as <see cref="Override"/> and <c>cora doctor</c> spell them.</summary>
    public const string GeneratorDtypeSwitch = "generator dtype (auto)", AttentionKernelSwitch = "attention kernel", ScoringStreamsSwitch = "scoring streams";

    /// <summary>Most parallel scoring streams (each holds a chunk's activations).</summary>
    public const int MaxScoringStreams = 4;

    /// <summary>Environment variable naming the folder of the decision cache (default: $XDG_CACHE_HOME/cora or ~/.cache/cora).</summary>
    public const string CacheVariable = "CORA_CACHE_DIR";

    private static readonly ConcurrentDictionary<string, MeasuredChoice> Cache = new();
    private static readonly object FileGate = new();

    /// <summary>Fixed decisions by switch name (value: the candidate), consulted before measuring; null = measure.</summary>
    public static Func<string, string?>? Override { get; set; }

    /// <summary>The decision cache file (null: no cache; decisions are then per process). Settable for tests.</summary>
    public static string? CachePath { get; set; } = DefaultCachePath();

    private static string? DefaultCachePath() => CacheFolder() is { } dir ? Path.Combine(dir, "cpu-choices.json") : null;

    /// <summary>Cora's cache folder (timed decisions, prepared natives): <see cref="CacheVariable"/>, else $XDG_CACHE_HOME/cora, else
    /// ~/.cache/cora; null without a home folder.</summary>
    internal static string? CacheFolder()
    {
        string? dir = Environment.GetEnvironmentVariable(CacheVariable);
        if (!string.IsNullOrWhiteSpace(dir)) return dir;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return !string.IsNullOrWhiteSpace(xdg) ? Path.Combine(xdg, "cora") : home.Length > 0 ? Path.Combine(home, ".cache", "cora") : null;
    }

    /// <summary>The decisions made or read so far in this process.</summary>
    public static IReadOnlyList<MeasuredChoice> Made => Cache.Values.OrderBy(c => c.Switch, StringComparer.Ordinal).ToList();

    /// <summary>What a cached decision is valid for: the CPU, the threads libtorch uses, and the code that was timed.</summary>
    internal static string MachineKey()
    {
        string Version(System.Reflection.Assembly a) =>
            System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>(a)?.InformationalVersion ?? a.GetName().Version?.ToString() ?? "?";
        return $"{MachineInfo.CpuIdentity()} | {Environment.ProcessorCount} cpus | {CoraDevice.Threads} threads | torchsharp {Version(typeof(torch).Assembly)} | cora {Version(typeof(CpuChoices).Assembly)}";
    }

    /// <summary>The decision for <paramref name="name"/> on this machine: fixed by <see cref="Override"/>, cached, or measured now.</summary>
    internal static MeasuredChoice Decide(string name, string key, Func<MeasuredChoice> measure)
    {
        if (Override?.Invoke(name) is { } fixedChoice) return new MeasuredChoice(name, fixedChoice, Array.Empty<ChoiceTiming>());
        LibTorchRuntime.EnsureLoaded();
        string fullKey = MachineKey() + " | " + key;
        return Cache.GetOrAdd(fullKey, _ =>
        {
            if (ReadCached(fullKey) is { } cached) return cached;
            MeasuredChoice made;
            // Measured with autograd on (the candidates run a backward), on the threads libtorch has been given.
            using (torch.inference_mode(false))
            using (torch.enable_grad())
                made = measure();
            WriteCached(fullKey, made);
            return made;
        });
    }

    private static Dictionary<string, MeasuredChoice> ReadFile(string path)
    {
        try
        {
            if (!File.Exists(path) || new FileInfo(path).Length > 1 << 20) return new();
            return System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, MeasuredChoice>>(File.ReadAllText(path)) ?? new();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or NotSupportedException) { return new(); }
    }

    private static MeasuredChoice? ReadCached(string key)
    {
        if (CachePath is not { } path) return null;
        lock (FileGate)
            return ReadFile(path).TryGetValue(key, out var c) && c is { Switch.Length: > 0, Chosen.Length: > 0, Timings: not null } ? c : null;
    }

    private static void WriteCached(string key, MeasuredChoice choice)
    {
        if (CachePath is not { } path) return;
        lock (FileGate)
            try
            {
                var all = ReadFile(path);
                all[key] = choice;
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                IO.AtomicFile.Write(path, s => System.Text.Json.JsonSerializer.Serialize(s, all, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // a read-only home: decisions stay per process
    }

    /// <summary>
    /// Whether the generator's products run faster in bf16 than in fp32 on this CPU: one layer of its feed-forward
    /// (<paramref name="hidden"/> -> <paramref name="feedForward"/>) over a training batch's queries, forward and backward, with
    /// the casts bf16 needs. "bf16" or "fp32".
    /// </summary>
    public static MeasuredChoice GeneratorDtype(int hidden, int feedForward, int rows = 64) =>
        Decide(GeneratorDtypeSwitch, $"gen:{hidden}:{feedForward}:{rows}", () =>
        {
            LibTorchRuntime.EnsureLoaded();
            using var scope = torch.NewDisposeScope();
            var gen = new torch.Generator(1);
            var w = torch.randn(new long[] { feedForward, hidden }, generator: gen).mul(0.02).requires_grad_();
            var x = torch.randn(new long[] { rows, hidden }, generator: gen).requires_grad_();
            double Run(ScalarType? dtype) => MeasuredChoice.Time(() =>
            {
                using var s = torch.NewDisposeScope();
                var y = dtype is { } d ? nn.functional.linear(x.to(d), w.to(d)).to(ScalarType.Float32) : nn.functional.linear(x, w);
                y.sum().backward();
                w.grad = null; x.grad = null;
            });
            return MeasuredChoice.Measure(GeneratorDtypeSwitch, new (string, Func<double>)[] { ("fp32", () => Run(null)), ("bf16", () => Run(ScalarType.BFloat16)) }, "fp32");
        });

    /// <summary>
    /// How many parallel streams scoring runs on this CPU for an LLM of width <paramref name="hidden"/>: "1" (one stream, every
    /// operation split across libtorch's threads) or "N" (N streams of one thread each, N = libtorch's threads, at most
    /// <see cref="MaxScoringStreams"/>). Timed on a decoder-layer-like chain of small operations at that width, done twice: one
    /// stream after the other against both at once on their own threads.
    /// </summary>
    public static MeasuredChoice ScoringStreams(int hidden)
    {
        int n = Math.Min(MaxScoringStreams, Math.Min(Environment.ProcessorCount, CoraDevice.Threads));
        if (n <= 1) return new MeasuredChoice(ScoringStreamsSwitch, "1", Array.Empty<ChoiceTiming>());
        return Decide(ScoringStreamsSwitch, $"streams:{hidden}:{n}", () =>
        {
            int rows = Math.Max(16, 512 * 64 / Math.Max(64, hidden));
            var gen = new torch.Generator(3);
            var w1 = torch.randn(new long[] { hidden, hidden }, generator: gen).mul(0.02);
            var w2 = torch.randn(new long[] { hidden, hidden }, generator: gen).mul(0.02);
            var x = torch.randn(new long[] { rows, hidden }, generator: gen);
            void Work()
            {
                using var mode = torch.inference_mode();
                using var scope = torch.NewDisposeScope();
                var h = x;
                for (int i = 0; i < 12; i++)
                {
                    var a = nn.functional.linear(h, w1);
                    h = nn.functional.linear(nn.functional.silu(a).mul(a), w2).add(h, Scalars.One);
                    h = h.mul(h.mul(h).mean(new long[] { -1 }, keepdim: true).add(Scalars.Of(1e-5)).rsqrt());
                }
            }
            double One() => MeasuredChoice.Time(() => { for (int s = 0; s < n; s++) Work(); });
            double Streams() => MeasuredChoice.Time(() =>
            {
                var threads = Enumerable.Range(0, n).Select(_ => new Thread(() =>
                {
                    torch.set_num_threads(1);
                    try { Work(); } finally { CoraDevice.RestoreThreads(); }
                })).ToList();
                foreach (var t in threads) t.Start();
                foreach (var t in threads) t.Join();
            });
            try { return MeasuredChoice.Measure(ScoringStreamsSwitch, new (string, Func<double>)[] { ("1", One), (n.ToString(System.Globalization.CultureInfo.InvariantCulture), Streams) }, "1"); }
            finally { w1.Dispose(); w2.Dispose(); x.Dispose(); }
        });
    }

    /// <summary>Forgets this process's decisions (the cache file stays; tests).</summary>
    public static void Reset() => Cache.Clear();
}
