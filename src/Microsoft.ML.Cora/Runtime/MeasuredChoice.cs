using System.Collections.Concurrent;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>One candidate of a <see cref="MeasuredChoice"/>: its median time, or why it could not run.</summary>
internal sealed record ChoiceTiming(string Candidate, double? Milliseconds, string? Error);

/// <summary>
/// A switch whose better setting depends on the CPU (its matrix units, vector width, caches), decided by timing each candidate
/// on this machine rather than by reading CPU flags: the same flag (avx512_bf16, say) is fast on one CPU and slow on another.
/// </summary>
/// <param name="Switch">What is decided, as <c>cora doctor</c> prints it.</param>
/// <param name="Chosen">The fastest candidate that ran, or the fallback when none did.</param>
/// <param name="Timings">Every candidate's median time or error, in the order given.</param>
internal sealed record MeasuredChoice(string Switch, string Chosen, IReadOnlyList<ChoiceTiming> Timings)
{
    /// <summary>Rounds per candidate; candidates alternate, one warm-up each first.</summary>
    public const int DefaultRounds = 7;

    /// <summary>How much faster than the first-listed candidate (the default) another must be to be chosen: a difference within
    /// timing noise keeps the default, and noise from other work on the machine cannot flip a decision that is cached.</summary>
    public const double DefaultMargin = 0.10;

    /// <summary>"bf16 (fp32 2.10 ms, bf16 1.30 ms)": the choice and the timings behind it.</summary>
    public override string ToString() =>
        $"{Chosen} ({string.Join(", ", Timings.Select(t => t.Milliseconds is { } ms ? $"{t.Candidate} {ms:F2} ms" : $"{t.Candidate} failed: {t.Error}"))})";

    /// <summary>
    /// Runs each candidate once to warm up, then <paramref name="rounds"/> times in alternation, and keeps each one's fastest
    /// round (other work on the machine only ever adds time). The first-listed candidate is the default: another is chosen only
    /// when its time is below (1 - <paramref name="margin"/>) of the default's, the fastest such one. A candidate that throws (or
    /// returns a time that is not finite and positive) is left out with its error; when none is usable the choice is
    /// <paramref name="fallback"/>.
    /// </summary>
    /// <param name="candidates">name and a function that runs the work once and returns its milliseconds; the first is the default</param>
    public static MeasuredChoice Measure(string name, IReadOnlyList<(string candidate, Func<double> runMs)> candidates, string fallback,
        int rounds = DefaultRounds, double margin = DefaultMargin)
    {
        if (candidates.Count == 0) throw new ArgumentException("no candidates", nameof(candidates));
        var times = candidates.Select(_ => new List<double>()).ToArray();
        var errors = new string?[candidates.Count];
        for (int round = -1; round < rounds; round++)
            for (int c = 0; c < candidates.Count; c++)
            {
                if (errors[c] is not null) continue;
                try
                {
                    double ms = candidates[c].runMs();
                    if (!double.IsFinite(ms) || ms <= 0) { errors[c] = $"time {ms} ms is not usable"; continue; }
                    if (round >= 0) times[c].Add(ms);
                }
                catch (Exception e) { errors[c] = e.Message.Split('\n')[0]; }
            }
        var timings = candidates.Select((c, i) => new ChoiceTiming(c.candidate, errors[i] is null ? times[i].Min() : null, errors[i])).ToList();
        var usable = timings.Where(t => t.Milliseconds is not null).ToList();
        if (usable.Count == 0) return new MeasuredChoice(name, fallback, timings);
        var chosen = usable[0];
        if (timings[0].Milliseconds is { } defaultMs)
        {
            var faster = usable.Skip(1).Where(t => t.Milliseconds < (1 - margin) * defaultMs).OrderBy(t => t.Milliseconds).FirstOrDefault();
            if (faster is not null) chosen = faster;
        }
        else chosen = usable.OrderBy(t => t.Milliseconds).First();   // the default failed: the fastest of the rest
        return new MeasuredChoice(name, chosen.Candidate, timings);
    }

    /// <summary>Milliseconds <paramref name="work"/> takes once.</summary>
    public static double Time(Action work)
    {
        long start = Stopwatch.GetTimestamp();
        work();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

}
