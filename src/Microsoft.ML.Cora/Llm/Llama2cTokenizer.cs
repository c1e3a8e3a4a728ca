using Microsoft.ML.Cora.IO;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// llama2.c's tokenizer format (<c>tok512.bin</c>): int32 max_token_length, then per token a float32 score,
/// an int32 length and UTF-8 bytes. Encoding follows llama2.c: a dummy-prefix space, one token per UTF-8
/// character (byte fallback to ids 3 + byte), then greedy merges of the best-scoring adjacent pair.
/// </summary>
internal sealed class Llama2cTokenizer : ITextTokenizer
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
