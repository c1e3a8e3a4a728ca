using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.ML.Cora;

namespace Cora.Cli;

/// <summary>
/// A bounded load run against a running service on loopback: a fixed number of /score requests at a fixed concurrency; it stops by
/// itself. Each request's pairs are distinct, and each answer is checked against its own request (same pairs, same order).
/// </summary>
public static class ServeLoad
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The pairs of request <paramref name="i"/>: known users and titled items of the model, spread deterministically.</summary>
    public static List<ScorePair> Pairs(CoraModel model, int i, int count)
    {
        var users = model.Users.UserIds.Where(model.Cf.KnowsUser).ToArray();
        var items = model.Items.Titles.Keys.Where(model.Cf.KnowsItem).OrderBy(x => x).ToArray();
        if (users.Length == 0 || items.Length == 0) throw new InvalidOperationException("The model remembers no users or titled items to build requests from.");
        return Enumerable.Range(0, count).Select(j => { long n = (long)i * count + j; return new ScorePair(users[n % users.Length], items[(n * 7919) % items.Length], null); }).ToList();
    }

    public static async Task<LoadFigures> RunAsync(HttpClient client, CoraModel model, int concurrency, int requests, int pairsPerRequest, int offset = 0, CancellationToken ct = default)
    {
        var latencies = new double[requests];
        var answered = new int[requests];
        int failed = 0, mismatched = 0, fromCf = 0, next = -1;
        var sw = Stopwatch.StartNew();
        async Task Worker()
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= requests) return;
                var pairs = Pairs(model, offset + i, pairsPerRequest);
                var t = Stopwatch.StartNew();
                try
                {
                    using var resp = await client.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json, ct);
                    latencies[i] = t.Elapsed.TotalMilliseconds;
                    if (!resp.IsSuccessStatusCode) { Interlocked.Increment(ref failed); continue; }
                    var body = await resp.Content.ReadFromJsonAsync<ScoreResponse>(Json, ct);
                    Interlocked.Increment(ref answered[i]);
                    if (body is null || body.Scores.Count != pairs.Count || body.Scores.Where((s, j) => s.User != pairs[j].User || s.Item != pairs[j].Item || !float.IsFinite(s.Score)).Any())
                        Interlocked.Increment(ref mismatched);
                    if (body?.Scores.Any(s => s.Source == "cf") == true) Interlocked.Increment(ref fromCf);
                }
                catch (HttpRequestException) { Interlocked.Increment(ref failed); }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker, ct)));
        double seconds = sw.Elapsed.TotalSeconds;
        var sorted = latencies.OrderBy(x => x).ToArray();
        double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        return new LoadFigures(concurrency, requests, pairsPerRequest, P(0.50), P(0.95), P(0.99), answered.Sum() * pairsPerRequest / seconds,
            answered.Count(a => a == 1), failed, mismatched + answered.Count(a => a > 1), fromCf, seconds);
    }
}
