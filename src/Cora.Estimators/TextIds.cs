using System.Collections.Concurrent;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>
/// Ids given as text ("alice", "tt0111161", "u1"): each distinct text seen when the model was fitted gets an integer id
/// (1, 2, ...; the model's CF tables, titles and histories work on those), saved with the model. Text the model never saw
/// gets an id of its own above <see cref="UnseenBase"/>, held for this process only, so it is scored as a cold user or item and
/// two unseen users stay two users in per-user metrics.
/// </summary>
internal sealed class TextIds
{
    /// <summary>Ids from here up belong to text the fitted model never saw (never saved, never in the CF tables).</summary>
    public const int UnseenBase = 1 << 30;

    private readonly Dictionary<string, int> _known = new(StringComparer.Ordinal);
    private readonly List<string> _names = new();          // id - 1 -> text
    private readonly ConcurrentDictionary<string, int> _unseen = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, string> _unseenNames = new();
    private int _nextUnseen = UnseenBase - 1;

    /// <summary>True while the model is fitted: new text becomes a known id.</summary>
    public bool Growing { get; set; }

    public int Count => _names.Count;

    /// <summary>The id of <paramref name="text"/> (surrounding spaces ignored); empty text is refused.</summary>
    public int Of(ReadOnlySpan<char> text, string column)
    {
        var key = text.Trim().ToString();
        if (key.Length == 0) throw new InvalidDataException($"Cora: column '{column}' holds an empty id; every row needs a user and an item id.");
        lock (_known)
        {
            if (_known.TryGetValue(key, out int id)) return id;
            if (Growing)
            {
                _names.Add(key);
                _known[key] = _names.Count;
                return _names.Count;
            }
        }
        return _unseen.GetOrAdd(key, k =>
        {
            int id = Interlocked.Increment(ref _nextUnseen);
            _unseenNames[id] = k;
            return id;
        });
    }

    /// <summary>The id of known text, or null (never assigns).</summary>
    public int? Find(string text)
    {
        lock (_known) return _known.TryGetValue(text.Trim(), out int id) ? id : null;
    }

    /// <summary>The text of an id given out by <see cref="Of"/>, or null.</summary>
    public string? NameOf(int id)
    {
        if (id >= UnseenBase) return _unseenNames.TryGetValue(id, out var n) ? n : null;
        lock (_known) return id >= 1 && id <= _names.Count ? _names[id - 1] : null;
    }

    public void Write(BinaryWriter w)
    {
        lock (_known)
        {
            w.Write(_names.Count);
            foreach (var n in _names) w.Write(n);
        }
    }

    public static TextIds Read(BinaryReader r, string what)
    {
        int n = r.ReadInt32();
        if (n < 0 || n > 100_000_000) throw new InvalidDataException($"Cora: the saved {what} id list declares {n} entries.");
        var ids = new TextIds();
        for (int i = 0; i < n; i++)
        {
            var name = r.ReadString();
            if (name.Length == 0 || !ids._known.TryAdd(name, i + 1)) throw new InvalidDataException($"Cora: the saved {what} id list has an empty or repeated entry at {i}.");
            ids._names.Add(name);
        }
        return ids;
    }
}
