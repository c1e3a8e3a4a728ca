using System.CommandLine;
using System.Reflection;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Llm;

namespace Cora.Cli;

/// <summary>
/// <c>cora score</c>: batch scoring of one shard of the input (by a stable hash of the user id), for Kubernetes Indexed Jobs and Slurm
/// arrays; <c>cora score verify</c> checks that every shard is there, intact and covers every input row once.
/// </summary>
internal static class ScoreCommand
{
    public const string ShardIndexVariable = "JOB_COMPLETION_INDEX", ShardCountVariable = "CORA_SHARDS";

    public static Command Create(CliContext c)
    {
        var loaded = ModelOptions.Create();
        var model = loaded.Model;
        var data = Cli.Req("--data", "Interactions (TSV): each row a user-item candidate to score, or with --candidates a user to retrieve for.");
        var outDir = Cli.Req("--out", "Output folder (created): part-NNNNN.parquet and part-NNNNN.json per shard.");
        var shard = new Option<string?>("--shard") { Description = $"I/N: score shard I of N (users by a stable hash). Default: ${ShardIndexVariable} (Kubernetes Indexed Job) of ${ShardCountVariable} or --shards, else 0/1." };
        shard.Validators.Add(r => { if (r.GetValueOrDefault<string?>() is { } s && ScoreShards.Parse(s, out var e) is null) r.AddError(e!); });
        var shards = Cli.Int("--shards", 0, $"Shard count when the index comes from ${ShardIndexVariable} (default ${ShardCountVariable}, else 1).");
        var candidates = Cli.Int("--candidates", 0, "Instead of scoring the input's items: retrieve this many candidates per input row from the CF stage and re-rank them.");
        var batch = Cli.Int("--batch", CoraDefaults.ScoringBatchSize, "Rows per LLM forward.", 1);
        var cmd = new Command("score", "Score one shard of a candidate file (or CF-retrieved candidates) into Parquet with a manifest; rerunning a shard rewrites the same bytes.")
            { model, data, outDir, shard, shards, candidates, batch };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.Subcommands.Add(Verify(c));
        cmd.SetAction(p =>
        {
            var on = dev.Get(p);
            var (index, count) = ResolveShard(p.GetValue(shard), p.GetValue(shards), Environment.GetEnvironmentVariable);
            string dir = p.GetValue(outDir)!;
            foreach (var (flag, path) in new[] { ("--model", p.GetValue(model)!), ("--data", p.GetValue(data)!) })
                if (!File.Exists(path)) throw new UsageException($"{flag}: '{ErrorText.Elide(path)}' not found.");
            if (File.Exists(dir)) throw new UsageException($"--out: '{ErrorText.Elide(dir)}' is a file; give a folder.");
            Directory.CreateDirectory(dir);
            var rows = InteractionTsv.Read(p.GetValue(data)!, notice: c.Err.WriteLine);
            var mine = Enumerable.Range(0, rows.Count).Where(i => ScoreShards.ShardOf(rows[i].UserId, count) == index).ToList();
            c.Out.WriteLine($"shard {index}/{count}: {mine.Count} of {rows.Count} input rows");
            var (_, t) = loaded.Load(p, on, p.GetValue(batch));
            using var _ = t;
            int k = p.GetValue(candidates);
            var scored = new List<ScoredRow>();
            if (k > 0)
            {
                foreach (int i in mine)
                {
                    c.Ct.ThrowIfCancellationRequested();
                    var r = rows[i];
                    var history = r.History.Where(h => h != 0).ToArray();
                    foreach (var rec in t.Recommend(r.UserId, k, history.Length > 0 ? history : null, candidates: k))
                        scored.Add(new ScoredRow(i, r.UserId, rec.ItemId, rec.Score, rec.Probability, rec.Rank));
                }
            }
            else
            {
                // Batches never mix users: a user's scores are then computed from exactly the same batches whatever the shard count,
                // so a sharded run reproduces a single-process run bit for bit (same libtorch, threads and device).
                var scores = new float[mine.Count];
                foreach (var g in Enumerable.Range(0, mine.Count).GroupBy(j => rows[mine[j]].UserId))
                {
                    var idx = g.ToList();
                    var s = t.Model.Score(idx.Select(j => rows[mine[j]]).ToList(), t.ScoringBatchSize, c.Ct);
                    for (int q = 0; q < idx.Count; q++) scores[idx[q]] = s[q];
                }
                // Rank within the user: all of a user's rows are in this shard, so the rank is global.
                var rank = new int[mine.Count];
                foreach (var g in Enumerable.Range(0, mine.Count).GroupBy(j => rows[mine[j]].UserId))
                {
                    int n = 1;
                    foreach (int j in g.OrderByDescending(j => scores[j]).ThenBy(j => rows[mine[j]].ItemId).ThenBy(j => j)) rank[j] = n++;
                }
                for (int j = 0; j < mine.Count; j++)
                {
                    var r = rows[mine[j]];
                    scored.Add(new ScoredRow(mine[j], r.UserId, r.ItemId, scores[j], CoraTransformer.Sigmoid(scores[j]), rank[j]));
                }
            }
            string part = Path.Combine(dir, ScoreShards.PartName(index));
            ScoreShards.WritePart(part, scored);
            ScoreShards.WriteManifest(Path.Combine(dir, ScoreShards.ManifestName(index)), new ShardManifest
            {
                Shard = index, Shards = count, Part = ScoreShards.PartName(index), PartSha256 = LlmFiles.FileSha256(part), Rows = scored.Count,
                InputRows = rows.Count, CoveredInputRows = mine.Count, InputSha256 = LlmFiles.FileSha256(p.GetValue(data)!),
                ModelSha256 = LlmFiles.FileSha256(p.GetValue(model)!), LlmSha256 = t.Model.LlmChecksum, Candidates = k,
                CoraVersion = typeof(CoraModel).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
            });
            c.Out.WriteLine($"wrote {part} ({scored.Count} rows)");
            return 0;
        });
        return cmd;
    }

    /// <summary>The shard: --shard I/N, else the Indexed Job's index with --shards (or CORA_SHARDS), else 0/1.</summary>
    internal static (int index, int count) ResolveShard(string? shard, int shards, Func<string, string?> env)
    {
        if (shard is not null) return ScoreShards.Parse(shard, out var e) ?? throw new UsageException(e!);
        string? idx = env(ShardIndexVariable);
        int count = shards > 0 ? shards : int.TryParse(env(ShardCountVariable), out var n) ? n : 1;
        if (idx is null) return count == 1 ? (0, 1) : throw new UsageException($"--shards {count} without a shard index: give --shard I/{count} or set {ShardIndexVariable}.");
        return ScoreShards.Parse($"{idx}/{count}", out var err) ?? throw new UsageException($"{ShardIndexVariable}={ErrorText.Elide(idx, 20)} with {count} shard(s): {err}");
    }

    private static Command Verify(CliContext c)
    {
        var dir = new Argument<string>("dir") { Description = "The --out folder of cora score." };
        var cmd = new Command("verify", "Check that every shard's part exists, matches its manifest, and that the parts cover every input row exactly once.") { dir };
        cmd.SetAction(p =>
        {
            string d = p.GetValue(dir)!;
            if (!Directory.Exists(d)) throw new UsageException($"'{ErrorText.Elide(d)}' is not a folder.");
            var problems = ScoreShards.Verify(d, out long rows);
            foreach (var problem in problems) c.Err.WriteLine("error: " + problem);
            if (problems.Count > 0) return 1;
            c.Out.WriteLine($"ok: {Directory.GetFiles(d, "part-*.parquet").Length} part(s), {rows} scored rows, every input row covered once");
            return 0;
        });
        return cmd;
    }
}
