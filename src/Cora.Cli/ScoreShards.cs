using System.Text.Json;
using Microsoft.ML.Cora.IO;
using Parquet;
using Parquet.Schema;
using Microsoft.ML.Cora.Llm;

namespace Cora.Cli;

/// <summary>One scored candidate: the input row it answers, user, item, score (logit), probability and rank within the user (1 = best).</summary>
internal readonly record struct ScoredRow(long Row, int User, int Item, float Score, float Probability, int Rank);

/// <summary>What a shard's manifest records (written beside its part, after it).</summary>
internal sealed record ShardManifest
{
    public int Shard { get; init; }
    public int Shards { get; init; }
    public string Part { get; init; } = "";
    public string PartSha256 { get; init; } = "";
    public long Rows { get; init; }
    public long InputRows { get; init; }
    public long CoveredInputRows { get; init; }
    public string InputSha256 { get; init; } = "";
    public string ModelSha256 { get; init; } = "";
    public string? LlmSha256 { get; init; }
    public int Candidates { get; init; }
    public string CoraVersion { get; init; } = "";
}

/// <summary>
/// The sharding contract of <c>cora score</c> (the same on Kubernetes Indexed Jobs and Slurm arrays): a row belongs to shard
/// <c>hash(user) mod N</c> with a fixed hash (FNV-1a over the user id's 4 little-endian bytes), so every candidate of a user is in one
/// shard and every process, machine and .NET version agrees. Each shard writes <c>part-NNNNN.parquet</c> and
/// <c>part-NNNNN.json</c>, both atomically (temporary name, then rename); a rerun writes the same bytes.
/// </summary>
internal static class ScoreShards
{
    public static readonly DataField<long> RowField = new("row");
    public static readonly DataField<int> UserField = new("user"), ItemField = new("item"), RankField = new("rank");
    public static readonly DataField<float> ScoreField = new("score"), ProbabilityField = new("probability");
    public static ParquetSchema Schema => new(RowField, UserField, ItemField, ScoreField, ProbabilityField, RankField);

    public static int ShardOf(int userId, int shards)
    {
        uint h = 2166136261;
        foreach (byte b in BitConverter.GetBytes(userId)) { h ^= b; h *= 16777619; }
        return (int)(h % (uint)shards);
    }

    public static string PartName(int shard) => $"part-{shard:D5}.parquet";
    public static string ManifestName(int shard) => $"part-{shard:D5}.json";

    /// <summary>Parses "I/N" (0 &lt;= I &lt; N); null with the reason otherwise.</summary>
    public static (int index, int count)? Parse(string s, out string? error)
    {
        error = null;
        var parts = s.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int i) && int.TryParse(parts[1], out int n) && n >= 1 && n <= 100_000 && i >= 0 && i < n) return (i, n);
        error = $"--shard: '{Microsoft.ML.Cora.IO.ErrorText.Elide(s, 40)}' is not I/N with 0 <= I < N <= 100000 (e.g. 0/4).";
        return null;
    }

    public static void WritePart(string path, IReadOnlyList<ScoredRow> rows) =>
        AtomicFile.Write(path, s => WriteAsync(s, rows).GetAwaiter().GetResult());   // the atomic temporary file is seekable, as Parquet.Net needs

    private static async Task WriteAsync(Stream s, IReadOnlyList<ScoredRow> rows)
    {
        await using var w = await ParquetWriter.CreateAsync(Schema, s);
        using var g = w.CreateRowGroup();
        await g.WriteAsync<long>(RowField, rows.Select(r => r.Row).ToArray());
        await g.WriteAsync<int>(UserField, rows.Select(r => r.User).ToArray());
        await g.WriteAsync<int>(ItemField, rows.Select(r => r.Item).ToArray());
        await g.WriteAsync<float>(ScoreField, rows.Select(r => r.Score).ToArray());
        await g.WriteAsync<float>(ProbabilityField, rows.Select(r => r.Probability).ToArray());
        await g.WriteAsync<int>(RankField, rows.Select(r => r.Rank).ToArray());
    }

    /// <summary>Reads a scored part; a file Parquet.Net cannot read is an <see cref="InvalidDataException"/> naming it.</summary>
    public static List<ScoredRow> ReadPart(string path)
    {
        try { return ReadAsync(path).GetAwaiter().GetResult(); }
        catch (Exception e) when (e is not (InvalidDataException or FileNotFoundException or OutOfMemoryException or OperationCanceledException))
        { throw new InvalidDataException($"{path}: not a readable scored part ({ErrorText.Elide(e.Message.Split('\n')[0], 200)}).", e); }
    }

    private static async Task<List<ScoredRow>> ReadAsync(string path)
    {
        FileChecks.RequireRegularFile(path, "Scored part");
        await using var fs = File.OpenRead(path);
        await using var r = await ParquetReader.CreateAsync(fs);
        var all = new List<ScoredRow>();
        for (int g = 0; g < r.RowGroupCount; g++)
        {
            using var rg = r.OpenRowGroupReader(g);
            int n = checked((int)rg.RowCount);
            // Read with the file's own fields (a field must belong to the schema it is read through).
            async Task<T[]> Col<T>(DataField<T> f) where T : struct
            {
                var field = r.Schema.DataFields.FirstOrDefault(x => x.Name == f.Name) ?? throw new InvalidDataException($"{path}: no column '{f.Name}'; not a cora score part.");
                var a = new T[n];
                await rg.ReadAsync<T>(field, a);
                return a;
            }
            var row = await Col(RowField); var user = await Col(UserField); var item = await Col(ItemField);
            var score = await Col(ScoreField); var prob = await Col(ProbabilityField); var rank = await Col(RankField);
            for (int i = 0; i < n; i++) all.Add(new ScoredRow(row[i], user[i], item[i], score[i], prob[i], rank[i]));
        }
        return all;
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static void WriteManifest(string path, ShardManifest m) =>
        AtomicFile.Write(path, s => s.Write(JsonSerializer.SerializeToUtf8Bytes(m, Json)));

    public static ShardManifest ReadManifest(string path)
    {
        FileChecks.RequireRegularFile(path, "Shard manifest");
        return JsonSerializer.Deserialize<ShardManifest>(File.ReadAllBytes(path), Json) ?? throw new InvalidDataException($"{path}: empty manifest.");
    }

    /// <summary>
    /// Checks a scored folder: manifests agree (shard count, input, model, LLM), every part 0..N-1 exists with the bytes its manifest
    /// names, and the parts together cover every input row exactly once. Returns the problems (empty = complete).
    /// </summary>
    /// <summary>Most shards and input rows a manifest may declare (bounds before anything is allocated from them).</summary>
    internal const int MaxShards = 100_000;
    internal const long MaxInputRows = 1L << 30;

    public static List<string> Verify(string dir, out long rows)
    {
        rows = 0;
        var problems = new List<string>();
        // Every entry of the folder is looked at, without opening anything but regular files (a FIFO would block a reader).
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir).OrderBy(f => f, StringComparer.Ordinal))
        {
            var kind = FileChecks.KindOf(entry);
            if (kind != FileChecks.Kind.Regular && !Path.GetFileName(entry).StartsWith('.'))
                problems.Add($"{Path.GetFileName(entry)}: a {kind.ToString().ToLowerInvariant()}, not a part or a manifest; nothing else belongs in a scored folder.");
        }
        var manifests = Directory.GetFiles(dir, "part-*.json").Where(f => FileChecks.KindOf(f) == FileChecks.Kind.Regular).OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (manifests.Count == 0) { problems.Add($"{dir}: no part-*.json manifests; nothing was scored here."); return problems; }
        var ms = new List<ShardManifest>();
        foreach (var f in manifests)
        {
            ShardManifest m;
            try { m = ReadManifest(f); }
            catch (Exception e) when (e is JsonException or InvalidDataException or IOException) { problems.Add($"{Path.GetFileName(f)}: not a valid manifest ({ErrorText.Elide(e.Message, 200)})."); continue; }
            string name = Path.GetFileName(f);
            if (m.Shards < 1 || m.Shards > MaxShards || m.Shard < 0 || m.Shard >= m.Shards)
                problems.Add($"{name}: shard {m.Shard} of {m.Shards} is out of range (1 to {MaxShards} shards).");
            else if (m.InputRows < 0 || m.InputRows > MaxInputRows || m.Rows < 0 || m.Rows > MaxInputRows * Math.Max(1, m.Candidates + 1))
                problems.Add($"{name}: row counts out of range (input {m.InputRows}, part {m.Rows}).");
            else if (name != ManifestName(m.Shard) || m.Part != PartName(m.Shard))
                problems.Add($"{name}: describes shard {m.Shard} ({m.Part}); a manifest copied or renamed from another shard's.");
            else ms.Add(m);
        }
        if (ms.Count == 0) return problems;
        var first = ms[0];
        foreach (var m in ms)
            foreach (var (what, a, b) in new[] { ("shard count", m.Shards.ToString(), first.Shards.ToString()), ("input", m.InputSha256, first.InputSha256), ("input rows", m.InputRows.ToString(), first.InputRows.ToString()),
                                                  ("model", m.ModelSha256, first.ModelSha256), ("LLM", m.LlmSha256 ?? "", first.LlmSha256 ?? ""), ("candidates", m.Candidates.ToString(), first.Candidates.ToString()) })
                if (a != b) problems.Add($"{m.Part}: another {what} than {first.Part} (mixed runs in one folder).");
        // Exactly the expected set: a stray or extra part would be counted by every reader of part-*.parquet.
        var expected = Enumerable.Range(0, first.Shards).SelectMany(i => new[] { PartName(i), ManifestName(i) }).ToHashSet();
        foreach (var f in Directory.GetFiles(dir).Select(Path.GetFileName).Where(n => n is not null && !n.StartsWith('.')).OrderBy(n => n, StringComparer.Ordinal))
            if (!expected.Contains(f!) && FileChecks.KindOf(Path.Combine(dir, f!)) == FileChecks.Kind.Regular)
                problems.Add($"{f}: not part of this run's {first.Shards} shard(s); remove it (readers of part-*.parquet would count it).");
        if (problems.Count > 0) return problems;
        var seen = new long[first.InputRows];
        for (int shard = 0; shard < first.Shards; shard++)
        {
            var m = ms.FirstOrDefault(x => x.Shard == shard);
            string part = Path.Combine(dir, PartName(shard));
            if (m is null) { problems.Add($"shard {shard}/{first.Shards}: {ManifestName(shard)} is missing (not run, or not finished); rerun it with --shard {shard}/{first.Shards}."); continue; }
            if (FileChecks.KindOf(part) != FileChecks.Kind.Regular) { problems.Add($"shard {shard}: {PartName(shard)} is missing; rerun it."); continue; }
            if (LlmFiles.FileSha256(part) != m.PartSha256) { problems.Add($"shard {shard}: {PartName(shard)} does not match its manifest (changed or partly written); rerun it."); continue; }
            var data = ReadPart(part);
            if (data.Count != m.Rows) problems.Add($"shard {shard}: {data.Count} rows, the manifest says {m.Rows}.");
            rows += data.Count;
            foreach (var r in data.Select(d => d.Row).Distinct())
            {
                if (r < 0 || r >= seen.Length) { problems.Add($"shard {shard}: input row {r} is outside the input's {seen.Length} rows."); break; }
                seen[r]++;
            }
            if (data.Any(d => ShardOf(d.User, first.Shards) != shard)) problems.Add($"shard {shard}: holds users of another shard.");
        }
        long missing = seen.LongCount(c => c == 0), twice = seen.LongCount(c => c > 1);
        if (problems.Count == 0 && missing > 0) problems.Add($"{missing} input row(s) are in no part (first: row {Array.IndexOf(seen, 0L)}).");
        if (twice > 0) problems.Add($"{twice} input row(s) are in more than one part.");
        return problems;
    }
}
