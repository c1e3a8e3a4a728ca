using Microsoft.ML.Cora.IO;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>Text to token ids for a LLaMA-family model.</summary>
public interface ITextTokenizer
{
    int BosId { get; }
    int EosId { get; }
    /// <summary>Encodes text; BOS is prepended only when <paramref name="addBos"/> is true.</summary>
    IReadOnlyList<int> Encode(string text, bool addBos);
    string Decode(IEnumerable<int> ids);
    /// <summary>Where the tokenizer came from (for error messages and model manifests).</summary>
    string Source { get; }
}

/// <summary>Finds and opens the tokenizer of a checkpoint.</summary>
public static class TextTokenizer
{
    /// <summary>
    /// Opens a tokenizer file: <c>tokenizer.model</c> / <c>*.model</c> (SentencePiece), <c>tokenizer.json</c>
    /// (Hugging Face), or a llama2.c <c>tok*.bin</c>.
    /// </summary>
    public static ITextTokenizer Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Tokenizer file not found: '{path}'.", path);
        string name = Path.GetFileName(path);
        if (name.EndsWith(".model", StringComparison.OrdinalIgnoreCase)) return new SentencePieceTextTokenizer(path);
        if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return new HuggingFaceJsonTokenizer(path);
        if (name.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return new Llama2cTokenizer(path);
        throw new NotSupportedException($"Unknown tokenizer file '{path}': expected a SentencePiece .model, a Hugging Face tokenizer.json or a llama2.c tok*.bin.");
    }

    /// <summary>The tokenizer of a Hugging Face folder (tokenizer.model preferred, then tokenizer.json).</summary>
    public static ITextTokenizer FromHuggingFaceFolder(string dir) => Open(PathInHuggingFaceFolder(dir));

    /// <summary>The tokenizer beside a llama2.c checkpoint: tokenizer.model or *.model (SentencePiece), else tokenizer.bin or tok*.bin.</summary>
    public static ITextTokenizer BesideLlama2c(string checkpoint) => Open(PathBesideLlama2c(checkpoint));

    /// <summary>Which file <see cref="FromHuggingFaceFolder"/> opens (without opening it).</summary>
    public static string PathInHuggingFaceFolder(string dir)
    {
        foreach (var f in new[] { "tokenizer.model", "tokenizer.json", "tokenizer.bin" })
            if (File.Exists(Path.Combine(dir, f))) return Path.Combine(dir, f);
        throw new FileNotFoundException($"No tokenizer in '{dir}': expected tokenizer.model (SentencePiece) or tokenizer.json (Hugging Face) (or a llama2.c tokenizer.bin).");
    }

    /// <summary>Which file <see cref="BesideLlama2c"/> opens (without opening it).</summary>
    public static string PathBesideLlama2c(string checkpoint)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(checkpoint))!;
        // SentencePiece models first: same ids as llama2.c's tokenizer, and a much faster encoder.
        var candidates = new[] { "tokenizer.model" }
            .Concat(Directory.EnumerateFiles(dir, "*.model").Select(Path.GetFileName).OrderBy(x => x)!)
            .Concat(new[] { "tokenizer.bin" })
            .Concat(Directory.EnumerateFiles(dir, "tok*.bin").Select(Path.GetFileName).OrderBy(x => x)!);
        foreach (var c in candidates)
            if (c is not null && File.Exists(Path.Combine(dir, c)) && Path.Combine(dir, c) != Path.GetFullPath(checkpoint)) return Path.Combine(dir, c);
        throw new FileNotFoundException($"No tokenizer beside '{checkpoint}': expected tokenizer.bin, tok*.bin (llama2.c) or a SentencePiece .model in '{dir}'.");
    }
}

/// <summary>SentencePiece <c>.model</c> through Microsoft.ML.Tokenizers.</summary>
public sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    private readonly Microsoft.ML.Tokenizers.LlamaTokenizer _tok;
    public string Source { get; }
    public int BosId => _tok.BeginningOfSentenceId;
    public int EosId => _tok.EndOfSentenceId;

    public SentencePieceTextTokenizer(string path)
    {
        Source = path;
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "Tokenizer");
        try
        {
            using var s = File.OpenRead(path);
            _tok = Microsoft.ML.Tokenizers.LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"{path}: not a readable SentencePiece model ({e.Message}).", e);
        }
    }

    public IReadOnlyList<int> Encode(string text, bool addBos) => _tok.EncodeToIds(text, addBos, false);
    public string Decode(IEnumerable<int> ids) => _tok.Decode(ids);
}

/// <summary>Hugging Face <c>tokenizer.json</c> through Tokenizers.DotNet (the Rust tokenizers library).</summary>
public sealed class HuggingFaceJsonTokenizer : ITextTokenizer, IDisposable
{
    private readonly global::Tokenizers.DotNet.Tokenizer _tok;
    private readonly object _gate = new();
    public string Source { get; }
    public int BosId { get; }
    public int EosId { get; }

    public HuggingFaceJsonTokenizer(string path)
    {
        Source = path;
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "Tokenizer");
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not an object"); }
        catch (Exception e) { throw new InvalidDataException($"{path}: not a valid tokenizer.json ({e.Message}).", e); }
        var special = new Dictionary<string, int>();
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added.OfType<JsonObject>())
                if ((string?)t["content"] is { } c && t["id"] is JsonValue v && v.TryGetValue<int>(out var id)) special[c] = id;
        var vocab = root["model"]?["vocab"] as JsonObject;
        int Find(params string[] names)
        {
            foreach (var n in names)
            {
                if (special.TryGetValue(n, out var id)) return id;
                if (vocab?[n] is JsonValue v && v.TryGetValue<int>(out var id2)) return id2;
            }
            return -1;
        }
        BosId = Find("<s>", "<|begin_of_text|>", "<|endoftext|>", "<|im_start|>");
        EosId = Find("</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>");
        _tok = new global::Tokenizers.DotNet.Tokenizer(path);
    }

    public IReadOnlyList<int> Encode(string text, bool addBos)
    {
        uint[] raw;
        lock (_gate) raw = _tok.Encode(text);
        var ids = raw.Select(x => (int)x).ToList();
        // The post-processor of some tokenizer.json files adds BOS itself: normalise to what was asked.
        if (ids.Count > 0 && ids[0] == BosId && BosId >= 0) ids.RemoveAt(0);
        if (addBos)
        {
            if (BosId < 0) throw new InvalidOperationException($"{Source}: no BOS token known; encode with addBos: false.");
            ids.Insert(0, BosId);
        }
        return ids;
    }

    public string Decode(IEnumerable<int> ids)
    {
        lock (_gate) return _tok.Decode(ids.Select(i => (uint)i).ToArray());
    }

    public void Dispose() => _tok.Dispose();
}

/// <summary>
/// llama2.c's tokenizer format (<c>tok512.bin</c>): int32 max_token_length, then per token a float32 score,
/// an int32 length and UTF-8 bytes. Encoding follows llama2.c: a dummy-prefix space, one token per UTF-8
/// character (byte fallback to ids 3 + byte), then greedy merges of the best-scoring adjacent pair.
/// </summary>
public sealed class Llama2cTokenizer : ITextTokenizer
{
    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    public string Source { get; }
    public int BosId => 1;
    public int EosId => 2;

    public Llama2cTokenizer(string path, int? vocabSize = null)
    {
        Source = path;
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "Tokenizer");
        var bytes = File.ReadAllBytes(path);
        var pieces = new List<string>();
        var scores = new List<float>();
        int pos = 4;
        if (bytes.Length < 4) throw new InvalidDataException($"{path}: truncated llama2.c tokenizer (no header).");
        while (pos < bytes.Length && (vocabSize is null || pieces.Count < vocabSize))
        {
            if (pos + 8 > bytes.Length) throw new InvalidDataException($"{path}: truncated at token {pieces.Count}.");
            float score = BitConverter.ToSingle(bytes, pos);
            int len = BitConverter.ToInt32(bytes, pos + 4);
            pos += 8;
            if (len < 0 || pos + len > bytes.Length) throw new InvalidDataException($"{path}: truncated or corrupt at token {pieces.Count} (length {len}).");
            pieces.Add(Encoding.UTF8.GetString(bytes, pos, len));
            scores.Add(score);
            pos += len;
        }
        _pieces = pieces.ToArray();
        _scores = scores.ToArray();
        for (int i = 0; i < _pieces.Length; i++) _ids.TryAdd(_pieces[i], i);
    }

    public int VocabSize => _pieces.Length;

    /// <summary>Writes a tokenizer in llama2.c's format.</summary>
    public static void Write(string path, IReadOnlyList<string> pieces, IReadOnlyList<float> scores)
    {
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(pieces.Max(p => Encoding.UTF8.GetByteCount(p)));
            for (int i = 0; i < pieces.Count; i++)
            {
                var b = Encoding.UTF8.GetBytes(pieces[i]);
                w.Write(scores[i]); w.Write(b.Length); w.Write(b);
            }
        });
    }

    public IReadOnlyList<int> Encode(string text, bool addBos)
    {
        var tokens = new List<int>();
        if (addBos) tokens.Add(BosId);
        if (text.Length == 0) return tokens;
        var work = new List<int>();
        if (_ids.TryGetValue(" ", out var space)) work.Add(space);                 // add_dummy_prefix
        foreach (var rune in text.EnumerateRunes())
        {
            string s = rune.ToString();
            if (_ids.TryGetValue(s, out var id)) work.Add(id);
            else foreach (var b in Encoding.UTF8.GetBytes(s)) work.Add(b + 3);     // byte fallback
        }
        while (true)
        {
            float best = float.NegativeInfinity;
            int bestId = -1, bestIdx = -1;
            for (int i = 0; i + 1 < work.Count; i++)
            {
                if (_ids.TryGetValue(_pieces[work[i]] + _pieces[work[i + 1]], out var id) && _scores[id] > best)
                { best = _scores[id]; bestId = id; bestIdx = i; }
            }
            if (bestIdx < 0) break;
            work[bestIdx] = bestId;
            work.RemoveAt(bestIdx + 1);
        }
        tokens.AddRange(work);
        return tokens;
    }

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        int prev = -1;
        foreach (var id in ids)
        {
            if (id == BosId || id == EosId) { prev = id; continue; }
            if (id >= 3 && id < 259) bytes.Add((byte)(id - 3));
            else
            {
                var piece = _pieces[id];
                if (prev == BosId && piece.StartsWith(' ')) piece = piece[1..];
                bytes.AddRange(Encoding.UTF8.GetBytes(piece));
            }
            prev = id;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
