using Microsoft.ML.Cora.IO;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>Hugging Face <c>tokenizer.json</c> through Tokenizers.DotNet (the Rust tokenizers library).</summary>
internal sealed class HuggingFaceJsonTokenizer : ITextTokenizer, IDisposable
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
