using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>Maps raw ids to embedding rows; row 0 is reserved for unknown ids and stays zero.</summary>
public sealed class IdMap
{
    private readonly Dictionary<long, long> _rows = new();
    public IReadOnlyList<long> Ids { get; }
    public IdMap(IEnumerable<long> ids)
    {
        Ids = ids.Distinct().OrderBy(x => x).ToArray();
        for (int i = 0; i < Ids.Count; i++) _rows[Ids[i]] = i + 1;
    }
    public int Rows => Ids.Count + 1;
    public bool Contains(long id) => _rows.ContainsKey(id);
    public long[] Map(long[] ids) => ids.Select(i => _rows.TryGetValue(i, out var r) ? r : 0L).ToArray();
}
