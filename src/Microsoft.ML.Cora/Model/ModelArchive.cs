using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora;

/// <summary>
/// The model file: a zip with manifest.json (format version, options, CF kind, the LLM by path and SHA-256 or embedded under
/// llm/, the SHA-256 and size of every other entry), cf.safetensors, trainable.safetensors, items.tsv and users.tsv.
/// A model file is treated as untrusted: entry names are checked for path traversal; every entry is streamed with its size
/// capped at the declared size and hashed while read; implausible compression ratios are refused before anything is written;
/// the manifest's options are bounded before anything is allocated; the stored tensors' shapes are compared with the shapes the
/// options imply (built on the "meta" device, which allocates nothing) before the model is built; the LLM path must be a
/// regular file or a model folder (no devices, FIFOs); checksum errors never print hashes. Temporary files are removed on every path.
/// </summary>
internal static class ModelArchive
{
    /// <summary>3: CoRA's CF-token scale (query_generator.token_scale). 2: users.tsv, CF kind, entry sizes, LLM file set (weights +
    /// tokenizer). Format 1 and 2 files still load (a CoRA model of format 2 reads its CF token unscaled, as it was trained).</summary>
    public const int FormatVersion = 3;
    /// <summary>The trainable tensor that files before format 3 lack.</summary>
    private const string TokenScaleKey = "query_generator.token_scale";
    public const long MaxManifestBytes = 1 << 20;
    /// <summary>Entries larger than this may not expand more than <see cref="MaxCompressionRatio"/> times their stored size.</summary>
    public const long RatioCheckFromBytes = 16L << 20;
    public const double MaxCompressionRatio = 200;

    internal sealed record Manifest(int FormatVersion, string Method, CoraModelOptions Options, string? LlmPath, string? LlmChecksum,
        bool LlmEmbedded, int YesTokenId, Dictionary<string, string>? EntrySha256, string? CfKind = null, Dictionary<string, long>? EntrySize = null,
        List<string>? LlmFiles = null, string? LlmTokenizer = null);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    /// <summary>
    /// Refuses an archive whose entries together would expand beyond <see cref="MaxCompressionRatio"/> times their stored bytes
    /// (many entries each small enough to skip the per-entry check), before anything is unpacked.
    /// </summary>
    public static void CheckTotal(ZipArchive zip, string name)
    {
        long total = 0, stored = 0;
        foreach (var e in zip.Entries)
        {
            if (e.Length < 0 || e.CompressedLength < 0) throw new InvalidDataException($"{name}: entry '{ErrorText.Elide(e.FullName, 80)}' declares a negative size; the file is corrupt.");
            total = total > long.MaxValue - e.Length ? long.MaxValue : total + e.Length;
            stored += e.CompressedLength;
        }
        if (total > RatioCheckFromBytes && total > MaxCompressionRatio * Math.Max(1, stored))
            throw new InvalidDataException($"{name}: its {zip.Entries.Count} entries would expand {stored} bytes to {total} (more than {MaxCompressionRatio}:1 in all); refusing to unpack them.");
    }

    public static void Save(CoraModel model, Stream stream, bool embedLlm)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var hashes = new Dictionary<string, string>();
        var sizes = new Dictionary<string, long>();
        // Each entry is streamed into the zip and hashed while written: no whole-entry copy in memory.
        void Add(string entry, Action<Stream> write, CompressionLevel level = CompressionLevel.Optimal)
        {
            using var e = zip.CreateEntry(entry, level).Open();
            using var h = new HashingStream(e);
            write(h);
            hashes[entry] = h.Hex();
            sizes[entry] = h.BytesWritten;
        }
        Add("cf.safetensors", s => SafetensorsFile.Write(s, model.Cf.ExportState()));
        Add("trainable.safetensors", s => SafetensorsFile.Write(s, model.Trainable.state_dict()));
        Add("items.tsv", model.Items.Write);
        Add("users.tsv", model.Users.Write);
        var llm = model.Llm;
        var files = llm?.Files;
        if (embedLlm && files is not null)
        {
            if (files.Select(Path.GetFileName).Distinct().Count() != files.Count) throw new InvalidOperationException("The LLM's files share a name; they cannot be embedded side by side.");
            foreach (var f in files)
                Add("llm/" + Path.GetFileName(f), s => { using var src = File.OpenRead(f); src.CopyTo(s, 1 << 20); }, CompressionLevel.NoCompression);
        }
        // The manifest goes last: it carries the SHA-256 and size of every other entry, checked on load.
        var m = new Manifest(FormatVersion, model.Options.Method.ToString(), model.Options, llm?.SourcePath, llm is null ? null : LlmFiles.Checksum(files!),
            embedLlm && llm is not null, model.YesTokenId, hashes, model.Cf.Kind, sizes, files?.Select(Path.GetFileName).ToList()!, llm is null ? null : Path.GetFileName(llm.Tokenizer.Source));
        using var w = new StreamWriter(zip.CreateEntry("manifest.json").Open());
        w.Write(JsonSerializer.Serialize(m, Json));
    }

    /// <summary>A bare Cora model (what <see cref="CoraModel.Save(string, bool)"/> writes) has its manifest at the root.</summary>
    internal static bool IsBare(ZipArchive zip) => zip.GetEntry("manifest.json") is not null;

    /// <summary>An ML.NET model (mlContext.Model.Save, `cora train --out`) keeps its transformers under TransformerChain/.</summary>
    internal static bool IsMlNet(ZipArchive zip) => zip.Entries.Any(e => e.FullName.StartsWith("TransformerChain/", StringComparison.Ordinal));

    /// <summary>A bare Cora model and not an ML.NET one: what the loaders outside this file tell apart before choosing one.</summary>
    internal static bool IsBareModel(ZipArchive zip) => IsBare(zip) && !IsMlNet(zip);

    public static CoraModel Load(Stream stream, string name, string? llmPath, ComputeTarget target)
    {
        ZipArchive zip;
        try { zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{name}: not a Cora model (not a readable zip: {e.Message}).", e); }
        using var _ = zip;
        string scratch = ScratchSpace.NewFile("load");
        try
        {
            foreach (var e in zip.Entries)
            {
                var full = Path.GetFullPath(Path.Combine(scratch, e.FullName));
                if (!full.StartsWith(scratch + Path.DirectorySeparatorChar, StringComparison.Ordinal) || Path.IsPathRooted(e.FullName))
                    throw new InvalidDataException($"{name}: entry '{ErrorText.Elide(e.FullName, 80)}' points outside the archive (path traversal); refusing to load.");
                if (e.Length > RatioCheckFromBytes && e.Length > MaxCompressionRatio * Math.Max(1, e.CompressedLength))
                    throw new InvalidDataException($"{name}: entry '{ErrorText.Elide(e.FullName, 80)}' would expand {e.CompressedLength} bytes to {e.Length} (more than {MaxCompressionRatio}:1); refusing to unpack it.");
            }
            CheckTotal(zip, name);
            // An ML.NET model (what `cora train --out` and mlContext.Model.Save write) wraps a Cora model: say how to open it.
            if (!IsBare(zip) && IsMlNet(zip))
                throw new InvalidDataException($"{name}: an ML.NET model (written by `cora train --out` or mlContext.Model.Save), not a bare Cora model: load it with mlContext.Model.LoadCora (Cora.Estimators) and take CoraTransformer.Find(model).Model, or use the cora CLI.");
            ZipArchiveEntry Entry(string n) => zip.GetEntry(n) ?? throw new InvalidDataException($"{name}: the entry '{n}' is missing; the file is not a complete Cora model.");
            var manifestEntry = Entry("manifest.json");
            if (manifestEntry.Length > MaxManifestBytes) throw new InvalidDataException($"{name}: manifest.json declares {manifestEntry.Length} bytes (at most {MaxManifestBytes}); the file is corrupt or crafted.");
            Manifest m;
            try
            {
                using var r = new StreamReader(new LimitedStream(manifestEntry.Open(), MaxManifestBytes, name + ": manifest.json"));
                m = JsonSerializer.Deserialize<Manifest>(r.ReadToEnd(), Json) ?? throw new InvalidDataException("empty manifest");
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException or ArgumentException)
            { throw new InvalidDataException($"{name}: manifest.json is corrupt ({ErrorText.Elide(e.Message)}).", e); }
            if (m.FormatVersion > FormatVersion)
                throw new InvalidDataException($"{name}: saved by a newer Cora (model format {m.FormatVersion}; this version reads up to {FormatVersion}). Upgrade Cora.");
            if (m.FormatVersion < 1 || m.Options is null || m.EntrySha256 is null)
                throw new InvalidDataException($"{name}: unknown model format version {m.FormatVersion} or incomplete manifest.");
            // Options from a file are bounded before anything is allocated.
            var problems = m.Options.Validate("Options.").ToList();
            if (problems.Count > 0) throw new InvalidDataException($"{name}: manifest.json has invalid options ({string.Join(" ", problems.Take(3))}); the file is corrupt or crafted.");
            if (m.FormatVersion < 3) m = m with { Options = m.Options with { QueryGenerator = m.Options.QueryGenerator with { CfTokenRms = 0 } } };

            Stream OpenVerified(string entry)
            {
                var e = Entry(entry);
                if (!m.EntrySha256!.TryGetValue(entry, out var expected))
                    throw new InvalidDataException($"{name}: entry '{entry}' is not listed in manifest.json; the file is corrupt or was altered.");
                long declared = m.EntrySize is not null && m.EntrySize.TryGetValue(entry, out var sz) ? sz : e.Length;
                if (declared != e.Length) throw new InvalidDataException($"{name}: entry '{entry}' holds {e.Length} bytes, manifest.json says {declared}; the file is corrupt or was altered.");
                return new VerifyingStream(e.Open(), declared, expected, $"{name}: entry '{entry}'");
            }
            string Extract(string entry)
            {
                string target = Path.Combine(scratch, entry.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                try
                {
                    using var src = OpenVerified(entry);
                    using var dst = new FileStream(target, FileMode.CreateNew, FileAccess.Write);
                    src.CopyTo(dst, 1 << 20);
                }
                catch (InvalidDataException e) when (!e.Message.StartsWith(name, StringComparison.Ordinal))
                { throw new InvalidDataException($"{name}: entry '{entry}' is corrupt ({e.Message}).", e); }
                return target;
            }
            T ReadVerified<T>(string entry, Func<Stream, T> read)
            {
                // Small text entries: verified in full (size and SHA-256) before they are parsed.
                var ms = new MemoryStream();
                using (var s = OpenVerified(entry)) s.CopyTo(ms);
                ms.Position = 0;
                return read(ms);
            }

            var cfFile = SafetensorsFile.Open(Extract("cf.safetensors"));
            var cf = CollaborativeModels.Import(m.CfKind ?? "mf", cfFile.Read);
            var items = ReadVerified("items.tsv", s => ItemCatalog.Read(s, name + ": items.tsv"));
            var users = m.FormatVersion >= 2 ? ReadVerified("users.tsv", s => UserProfiles.Read(s, name + ": users.tsv")) : UserProfiles.Empty;
            LanguageModel? llm = null;
            if (m.Options.Method != CoraMethod.Mf) llm = LoadLlm(m, name, llmPath, target, zip, Extract);
            var trainableFile = SafetensorsFile.Open(Extract("trainable.safetensors"));
            bool scaleAbsent = m.FormatVersion < 3;                                     // such a file has no token_scale: ones
            CheckShapes(m.Options, llm, cf.EmbeddingDim, trainableFile, name, scaleAbsent);
            var model = new CoraModel(m.Options, llm, cf, items) { Users = users, LlmChecksum = m.LlmChecksum };
            using (torch.no_grad())
                foreach (var (k, t) in model.Trainable.state_dict())
                {
                    if (scaleAbsent && k == TokenScaleKey) continue;
                    using var v = trainableFile.Read(k);
                    t.copy_(v);
                }
            model.Trainable.eval();
            if (llm is null) model.To(target.Device);
            return model;
        }
        finally
        {
            // The LLM (if embedded) is fully loaded into memory by now.
            try { if (Directory.Exists(scratch)) Directory.Delete(scratch, true); } catch (IOException) { }
        }
    }

    /// <summary>The stored trainable tensors must be exactly those the options imply (compared on "meta" tensors: no allocation).</summary>
    private static void CheckShapes(CoraModelOptions options, LanguageModel? llm, int cfDim, SafetensorsFile stored, string name, bool scaleAbsent)
    {
        Dictionary<string, long[]> expected;
        using (CoraDevice.BuildScope(new Device("meta"), ScalarType.Float32))
        using (var meta = CoraModel.BuildTrainable(options, llm, cfDim))
            expected = meta.state_dict().Where(kv => !(scaleAbsent && kv.Key == TokenScaleKey)).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var missing = expected.Keys.Where(k => !stored.Entries.ContainsKey(k)).ToList();
        var extra = stored.Entries.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"{name}: trainable.safetensors does not match the options (missing: {string.Join(", ", missing.Take(5))}; unexpected: {string.Join(", ", extra.Take(5).Select(x => ErrorText.Elide(x, 60)))}).");
        foreach (var (k, shape) in expected)
            if (!stored.Entries[k].Shape.SequenceEqual(shape))
                throw new InvalidDataException($"{name}: tensor '{k}' has shape [{string.Join(", ", stored.Entries[k].Shape)}], the options need [{string.Join(", ", shape)}].");
    }

    private static LanguageModel LoadLlm(Manifest m, string name, string? llmPath, ComputeTarget target, ZipArchive zip, Func<string, string> extract)
    {
        string? source = llmPath, tokenizer = null;
        if (source is null && m.LlmEmbedded)
        {
            var entries = zip.Entries.Where(e => e.FullName.StartsWith("llm/", StringComparison.Ordinal) && e.FullName.Length > 4).ToList();
            if (entries.Count == 0) throw new InvalidDataException($"{name}: the manifest says the LLM is embedded, but the file holds no llm/ entries; the file is corrupt.");
            var paths = entries.Select(e => extract(e.FullName)).ToList();
            string dir = Path.GetDirectoryName(paths[0])!;
            if (File.Exists(Path.Combine(dir, "config.json"))) source = dir;
            else
            {
                var weights = m.LlmFiles?.FirstOrDefault() is { } w ? Path.Combine(dir, w) : paths.FirstOrDefault(p => p.EndsWith(".bin", StringComparison.Ordinal) && !Path.GetFileName(p).StartsWith("tok", StringComparison.OrdinalIgnoreCase));
                source = weights is not null && File.Exists(weights) ? weights
                    : throw new InvalidDataException($"{name}: the embedded LLM has neither config.json nor a llama2.c .bin; the file is corrupt.");
            }
            if (m.LlmTokenizer is { } t) tokenizer = File.Exists(Path.Combine(dir, t)) ? Path.Combine(dir, t)
                : throw new InvalidDataException($"{name}: the embedded LLM's tokenizer '{ErrorText.Elide(t, 60)}' is missing; the file is corrupt.");
        }
        source ??= m.LlmPath;
        if (source is null || (!File.Exists(source) && !Directory.Exists(source)))
            throw new FileNotFoundException($"{name}: the LLM this model was trained with is not at '{ErrorText.Elide(m.LlmPath ?? "(none recorded)")}'. Move it back, or pass its new location (llmPath / --llm).");
        if (File.Exists(source)) FileChecks.RequireRegularFile(source, $"{name}: the LLM");
        if (llmPath is null && !m.LlmEmbedded && Environment.GetEnvironmentVariable("CORA_LLM_ROOTS") is { Length: > 0 } roots
            && !roots.Split(':', StringSplitOptions.RemoveEmptyEntries).Any(r => Path.GetFullPath(source).StartsWith(Path.GetFullPath(r).TrimEnd('/') + "/", StringComparison.Ordinal)))
            throw new UnauthorizedAccessException($"{name}: the model names an LLM at '{ErrorText.Elide(source)}', outside CORA_LLM_ROOTS; pass the LLM's location explicitly (llmPath / --llm) if you trust it.");
        if (m.LlmChecksum is null)
            throw new InvalidDataException($"{name}: the manifest records no checksum of its LLM, so the LLM at '{ErrorText.Elide(source)}' cannot be checked; the file is damaged or was not written by Cora. Retrain or re-save the model.");
        {
            bool same = m.FormatVersion >= 2
                ? LlmFiles.Checksum(LlmFiles.Of(source, tokenizer ?? TokenizerNamed(source, m.LlmTokenizer))) == m.LlmChecksum
                : LegacyChecksum(source) == m.LlmChecksum;
            if (!same)
                throw new InvalidDataException($"{name}: the LLM at '{ErrorText.Elide(source)}' (weights or tokenizer) is not the one this model was trained with. Scores would be wrong; use the original files.");
        }
        return LanguageModel.Load(source, target, tokenizerPath: tokenizer ?? TokenizerNamed(source, m.LlmTokenizer));
    }

    /// <summary>The tokenizer file the model was trained with, when it sits beside the weights under the recorded name.</summary>
    private static string? TokenizerNamed(string source, string? tokenizerName)
    {
        if (tokenizerName is null) return null;
        string dir = Directory.Exists(source) ? source : Path.GetDirectoryName(Path.GetFullPath(source))!;
        string p = Path.Combine(dir, Path.GetFileName(tokenizerName));
        return File.Exists(p) ? p : null;
    }

    /// <summary>Format 1's checksum: the plain SHA-256 of a .bin, or of a folder's config.json, safetensors and pytorch_model.bin.</summary>
    private static string LegacyChecksum(string path)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        IEnumerable<string> files = File.Exists(path) ? new[] { path }
            : Directory.EnumerateFiles(path).Where(f => f.EndsWith(".safetensors") || Path.GetFileName(f) is "config.json" or "pytorch_model.bin").OrderBy(f => f, StringComparer.Ordinal);
        bool single = File.Exists(path);
        foreach (var f in files)
        {
            if (!single) sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(f) + "\n"));
            LlmFiles.AppendFile(sha, f);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}

/// <summary>Reads at most a limit; more is an error (a zip entry that decompresses past its declared size).</summary>
internal sealed class LimitedStream : Stream
{
    private readonly Stream _inner; private readonly long _limit; private readonly string _what; private long _read;
    public LimitedStream(Stream inner, long limit, string what) { _inner = inner; _limit = limit; _what = what; }
    public override int Read(byte[] buffer, int offset, int count)
    {
        int n = _inner.Read(buffer, offset, count);
        _read += n;
        if (_read > _limit) throw new InvalidDataException($"{_what} is longer than its declared {_limit} bytes; the file is corrupt or crafted.");
        return n;
    }
    public override bool CanRead => true; public override bool CanSeek => false; public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    protected override void Dispose(bool disposing) { if (disposing) _inner.Dispose(); base.Dispose(disposing); }
}

/// <summary>Reads exactly the declared size, hashing as it goes; at the end the SHA-256 must match (else "corrupt").</summary>
internal sealed class VerifyingStream : Stream
{
    private readonly Stream _inner; private readonly long _size; private readonly string _expected, _what;
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _read; private bool _checked;
    public VerifyingStream(Stream inner, long size, string expectedSha, string what) { _inner = inner; _size = size; _expected = expectedSha; _what = what; }
    public override int Read(byte[] buffer, int offset, int count)
    {
        int n;
        try { n = _inner.Read(buffer, offset, (int)Math.Min(count, Math.Max(0, _size - _read + 1))); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{_what} is corrupt ({e.Message}).", e); }
        _read += n;
        if (_read > _size) throw new InvalidDataException($"{_what} is longer than its declared {_size} bytes; the file is corrupt or crafted.");
        _sha.AppendData(buffer, offset, n);
        if (n == 0 && !_checked)
        {
            _checked = true;
            if (_read != _size) throw new InvalidDataException($"{_what} is truncated or corrupt ({_read} of {_size} bytes).");
            if (Convert.ToHexString(_sha.GetHashAndReset()).ToLowerInvariant() != _expected)
                throw new InvalidDataException($"{_what} is corrupt (SHA-256 differs from manifest.json).");
        }
        return n;
    }
    public override bool CanRead => true; public override bool CanSeek => false; public override bool CanWrite => false;
    public override long Length => _size;
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    protected override void Dispose(bool disposing) { if (disposing) { _inner.Dispose(); _sha.Dispose(); } base.Dispose(disposing); }
}
