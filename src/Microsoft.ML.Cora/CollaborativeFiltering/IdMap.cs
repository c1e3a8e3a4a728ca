using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>Maps raw ids to embedding rows; row 0 is reserved for unknown ids and stays zero.</summary>
public sealed class IdMap
{
    private readonly Dictionary<long, long> _rows = new();
    /// <summary>The ids, ascending; id Ids[i] has row i + 1.</summary>
    public IReadOnlyList<long> Ids { get; }
    /// <summary>Maps each distinct id to a row of an embedding table; row 0 is left for unseen ids.</summary>
    public IdMap(IEnumerable<long> ids)
    {
        Ids = ids.Distinct().OrderBy(x => x).ToArray();
        for (int i = 0; i < Ids.Count; i++) _rows[Ids[i]] = i + 1;
    }
    /// <summary>Rows an embedding table over these ids needs (one per id, plus row 0 for unseen ids).</summary>
    public int Rows => Ids.Count + 1;
    /// <summary>Whether the id was given.</summary>
    public bool Contains(long id) => _rows.ContainsKey(id);
    /// <summary>The rows of the ids; 0 for ids not given.</summary>
    public long[] Map(long[] ids) => ids.Select(i => _rows.TryGetValue(i, out var r) ? r : 0L).ToArray();
}
