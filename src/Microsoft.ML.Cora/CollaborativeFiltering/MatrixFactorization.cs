using Microsoft.ML.Cora.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// Matrix factorisation as CoLLM and CoRA use it: score = &lt;u, i&gt;, BCE on the click label.
/// Also built from embeddings trained elsewhere (e.g. ML.NET's MatrixFactorizationModelParameters
/// LeftFactorMatrix / RightFactorMatrix) through <see cref="FromMatrices"/>.
/// </summary>
public sealed class MatrixFactorization : nn.Module, ICollaborativeModel
{
#pragma warning disable IDE1006
    /// <summary>The user and item embedding tables, [rows, k] (row 0: unseen ids, zero).</summary>
    public Embedding user_embedding, item_embedding;
#pragma warning restore IDE1006
    /// <summary>User id -> row of <see cref="user_embedding"/>.</summary>
    public IdMap Users { get; }
    /// <summary>Item id -> row of <see cref="item_embedding"/>.</summary>
    public IdMap Items { get; }
    /// <summary>"mf".</summary>
    public string Kind => "mf";
    /// <summary>Width k of the embeddings.</summary>
    public int EmbeddingDim { get; }

    /// <summary>An untrained MF model over these users and items with k = <paramref name="dim"/> (seeded initial weights).</summary>
    public MatrixFactorization(IdMap users, IdMap items, int dim, long seed = CoraDefaults.Seed) : base("mf")
    {
        Users = users; Items = items; EmbeddingDim = dim;
        user_embedding = nn.Embedding(users.Rows, dim);
        item_embedding = nn.Embedding(items.Rows, dim);
        RegisterComponents();
        using var _ = torch.no_grad();
        var g = new torch.Generator((ulong)seed);
        user_embedding.weight!.normal_(0, 0.1, g);
        item_embedding.weight!.normal_(0, 0.1, g);
        ZeroUnknownRows();
    }

    private void ZeroUnknownRows()
    {
        using var _ = torch.no_grad();
        user_embedding.weight![0].zero_();
        item_embedding.weight![0].zero_();
    }

    /// <summary>
    /// Wraps embeddings a user already has: row-major [users, k] and [items, k] float matrices with the original id of each
    /// row (the ids the data uses, never key indices). From ML.NET's matrix factorization use <see cref="FromMlNetFactors"/>,
    /// which handles both orientations and the key-to-id mapping.
    /// </summary>
    public static MatrixFactorization FromMatrices(IReadOnlyList<float> userFactors, IReadOnlyList<long> userIds,
        IReadOnlyList<float> itemFactors, IReadOnlyList<long> itemIds, int rank)
    {
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), "rank must be positive.");
        if (userFactors.Count != userIds.Count * rank)
            throw new ArgumentException($"userFactors has {userFactors.Count} values; {userIds.Count} users x rank {rank} needs {userIds.Count * rank}.", nameof(userFactors));
        if (itemFactors.Count != itemIds.Count * rank)
            throw new ArgumentException($"itemFactors has {itemFactors.Count} values; {itemIds.Count} items x rank {rank} needs {itemIds.Count * rank}.", nameof(itemFactors));
        if (userIds.Distinct().Count() != userIds.Count) throw new ArgumentException("userIds contains duplicates.", nameof(userIds));
        if (itemIds.Distinct().Count() != itemIds.Count) throw new ArgumentException("itemIds contains duplicates.", nameof(itemIds));
        var mf = new MatrixFactorization(new IdMap(userIds), new IdMap(itemIds), rank);
        using var _ = torch.no_grad();
        void Fill(Embedding e, IdMap map, IReadOnlyList<float> f, IReadOnlyList<long> ids)
        {
            var rows = map.Map(ids.ToArray());
            var src = torch.tensor(f.ToArray(), new long[] { ids.Count, rank });
            e.weight!.index_copy_(0, torch.tensor(rows), src);
        }
        Fill(mf.user_embedding, mf.Users, userFactors, userIds);
        Fill(mf.item_embedding, mf.Items, itemFactors, itemIds);
        foreach (var p in mf.parameters()) p.requires_grad = false;
        return mf;
    }

    /// <summary>
    /// The CF stage from a trained ML.NET <c>MatrixFactorizationModelParameters</c> (<c>p = model.Model</c>):
    /// <code>
    /// var cf = MatrixFactorization.FromMlNetFactors(
    ///     p.LeftFactorMatrix, rowKeyValues, p.RightFactorMatrix, columnKeyValues, p.ApproximationRank,
    ///     usersAreRows: false);   // the ML.NET movie tutorial: MatrixColumnIndexColumnName = users, MatrixRowIndexColumnName = movies
    /// </code>
    /// <c>LeftFactorMatrix</c> holds NumberOfRows x ApproximationRank values (row-major) for the keys of the matrix *row* index
    /// column, <c>RightFactorMatrix</c> NumberOfColumns x ApproximationRank for the *column* index column. Key k (1-based) is row
    /// k - 1, and its original id is the k-th entry of that column's KeyValues annotation (<c>GetKeyValues</c> on the schema column
    /// after MapValueToKey), passed here as <paramref name="rowKeyValues"/> / <paramref name="columnKeyValues"/>.
    /// <paramref name="usersAreRows"/> says which side the users were: true when MatrixRowIndexColumnName was the user id.
    /// </summary>
    public static MatrixFactorization FromMlNetFactors(IReadOnlyList<float> leftFactorMatrix, IReadOnlyList<long> rowKeyValues,
        IReadOnlyList<float> rightFactorMatrix, IReadOnlyList<long> columnKeyValues, int approximationRank, bool usersAreRows)
    {
        if (leftFactorMatrix.Count != (long)rowKeyValues.Count * approximationRank)
            throw new ArgumentException($"LeftFactorMatrix has {leftFactorMatrix.Count} values but {rowKeyValues.Count} row keys x rank {approximationRank} = {(long)rowKeyValues.Count * approximationRank}: pass the KeyValues of the matrix row index column.", nameof(rowKeyValues));
        if (rightFactorMatrix.Count != (long)columnKeyValues.Count * approximationRank)
            throw new ArgumentException($"RightFactorMatrix has {rightFactorMatrix.Count} values but {columnKeyValues.Count} column keys x rank {approximationRank} = {(long)columnKeyValues.Count * approximationRank}: pass the KeyValues of the matrix column index column.", nameof(columnKeyValues));
        return usersAreRows
            ? FromMatrices(leftFactorMatrix, rowKeyValues, rightFactorMatrix, columnKeyValues, approximationRank)
            : FromMatrices(rightFactorMatrix, columnKeyValues, leftFactorMatrix, rowKeyValues, approximationRank);
    }

    /// <summary>Whether the user had interactions in training.</summary>
    public bool KnowsUser(int userId) => Users.Contains(userId);
    /// <summary>Whether the item had interactions in training.</summary>
    public bool KnowsItem(int itemId) => Items.Contains(itemId);
    /// <summary>The item ids with embeddings.</summary>
    public IReadOnlyList<long> ItemIds => Items.Ids;
    /// <summary>Where the embeddings live.</summary>
    public Device Device => user_embedding.weight!.device;
    /// <summary>Moves the embeddings to a device and dtype.</summary>
    public void MoveTo(Device device, ScalarType dtype) => this.to(device, dtype);
    /// <summary>The trainable tensors (both embedding tables).</summary>
    public IEnumerable<Parameter> Weights => parameters();
    /// <summary>By user id; a user unseen in training gets the zero vector (MF score 0, probability 0.5).</summary>
    public Tensor UserEmbeddings(IReadOnlyList<Interaction> rows) => user_embedding.call(torch.tensor(Users.Map(rows.Select(r => (long)r.UserId).ToArray()), device: Device));
    /// <summary>By item id; an item unseen in training gets the zero vector.</summary>
    public Tensor ItemEmbeddings(long[] itemIds) => item_embedding.call(torch.tensor(Items.Map(itemIds), device: Device));
    /// <summary>The MF logits of the rows, [B]: the dot product of the user and item embeddings.</summary>
    public Tensor Score(IReadOnlyList<Interaction> rows) => CollaborativeTraining.Dot(this, rows);
    /// <summary><see cref="Score"/> on the host, in batches.</summary>
    public float[] ScoreRows(IReadOnlyList<Interaction> rows) => CollaborativeTraining.ScoreRows(this, rows);

    /// <summary>Trains MF with Adam and BCE, early stopping on validation AUC (the best epoch's weights are kept).</summary>
    public static MatrixFactorization Train(IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid, MatrixFactorizationOptions? options = null,
        Action<string>? log = null, CancellationToken ct = default)
    {
        var o = options ?? new MatrixFactorizationOptions();
        OptionChecks.ThrowIfAny(o.Validate("MatrixFactorization."), nameof(options));
        torch.manual_seed(o.Seed);
        var mf = new MatrixFactorization(new IdMap(train.Select(r => (long)r.UserId)), new IdMap(train.Select(r => (long)r.ItemId)), o.EmbeddingDimFor(CollaborativeKind.Mf), o.Seed);
        CollaborativeTraining.Run(mf, mf, train, valid, o, CollaborativeKind.Mf, log, ct, afterStep: mf.ZeroUnknownRows);
        return mf;
    }

    /// <summary>State for saving: embeddings and the id of each row.</summary>
    public Dictionary<string, Tensor> ExportState() => new()
    {
        ["user_embedding.weight"] = user_embedding.weight!,
        ["item_embedding.weight"] = item_embedding.weight!,
        ["user_ids"] = torch.tensor(Users.Ids.ToArray()),
        ["item_ids"] = torch.tensor(Items.Ids.ToArray()),
    };

    /// <summary>MF as a CF unit: CoRA's MF stage defaults.</summary>
    public static CollaborativeModelUnit Registration { get; } = new(CollaborativeKind.Mf, "mf", "MF", new[] { "mf" },
        CoraDefaults.MfEmbeddingDim, CoraDefaults.MfLearningRate, CoraDefaults.MfWeightDecay, CoraDefaults.MfCfTokenRms,
        (t, v, o, log, ct) => Train(t, v, o, log, ct), ImportState);

    /// <summary>An MF model from saved tensors (<paramref name="read"/> returns a tensor by name); its id maps come from the saved ids.</summary>
    public static MatrixFactorization ImportState(Func<string, Tensor> read)
    {
        var uids = read("user_ids").data<long>().ToArray();
        var iids = read("item_ids").data<long>().ToArray();
        var u = read("user_embedding.weight");
        var i = read("item_embedding.weight");
        // Shapes first: the tables to allocate are exactly the ones present in the file (never a size the file only declares).
        if (u.dim() != 2 || i.dim() != 2 || u.shape[0] != uids.Length + 1 || i.shape[0] != iids.Length + 1 || u.shape[1] != i.shape[1] || u.shape[1] < 1)
            throw new InvalidDataException($"MF state: tables [{string.Join(",", u.shape)}] and [{string.Join(",", i.shape)}] do not match the id lists ({uids.Length}+1, {iids.Length}+1).");
        var mf = new MatrixFactorization(new IdMap(uids), new IdMap(iids), (int)u.shape[1]);
        using var _ = torch.no_grad();
        mf.user_embedding.weight!.copy_(u);
        mf.item_embedding.weight!.copy_(i);
        foreach (var p in mf.parameters()) p.requires_grad = false;
        mf.eval();
        return mf;
    }
}
