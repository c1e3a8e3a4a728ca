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
    /// <summary>How a row's liked history enters its user embedding (<see cref="FitHistoryMap"/>); <see cref="UserHistory.None"/>
    /// until a map is fitted or loaded.</summary>
    public UserHistory History { get; private set; } = UserHistory.None;
    /// <summary>[k, k]: a mean liked-item embedding times this map is a user embedding; null while <see cref="History"/> is None.</summary>
    private Tensor? _historyMap;

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
    /// <summary>Moves the embeddings (and the history map) to a device and dtype.</summary>
    public void MoveTo(Device device, ScalarType dtype)
    {
        this.to(device, dtype);
        if (_historyMap is not null) { var moved = _historyMap.to(dtype, device); if (!ReferenceEquals(moved, _historyMap)) { _historyMap.Dispose(); _historyMap = moved; } }
    }
    /// <summary>The trainable tensors (both embedding tables).</summary>
    public IEnumerable<Parameter> Weights => parameters();
    /// <summary>
    /// [B, k]. By user id; a user unseen in training gets the zero vector (MF score 0, probability 0.5), or with
    /// <see cref="History"/> set the history estimate of the row (<see cref="UserHistory"/>).
    /// </summary>
    public Tensor UserEmbeddings(IReadOnlyList<Interaction> rows)
    {
        var userRows = torch.tensor(Users.Map(rows.Select(r => (long)r.UserId).ToArray()), device: Device);   // [B]; 0 = unseen
        var own = user_embedding.call(userRows);                                   // [B, k]
        if (History == UserHistory.None || _historyMap is null) return own;
        using var scope = torch.NewDisposeScope();
        var (mean, has) = HistoryMeans(rows);                                     // [B, k], [B]
        var estimate = mean.matmul(_historyMap.to(mean.dtype));                   // [B, k]
        var known = userRows.ne(0).unsqueeze(1);                                   // [B, 1]
        var withHistory = has.unsqueeze(1);                                        // [B, 1]
        // Unknown users: the estimate (zero without history). Known users: their own, or (Blend) the mean of own and estimate.
        var ownWeight = History == UserHistory.Blend ? torch.where(withHistory, 0.5, 1.0).to(own.dtype) : torch.ones_like(withHistory, own.dtype);
        var u = torch.where(known, own * ownWeight + estimate * (1 - ownWeight), estimate * withHistory.to(own.dtype));
        return u.MoveToOuterDisposeScope();
    }

    /// <summary>The mean item embedding of each row's known liked items, [B, k], and whether the row has any, [B].</summary>
    private (Tensor Mean, Tensor Has) HistoryMeans(IReadOnlyList<Interaction> rows)
    {
        var bag = new List<long>();
        var item = new List<long>();
        var share = new List<float>();
        var has = new bool[rows.Count];
        for (int b = 0; b < rows.Count; b++)
        {
            int start = item.Count;
            var history = rows[b].History;
            var mapped = Items.Map(Array.ConvertAll(history, id => (long)id));   // 0 = an item unseen in training
            for (int j = 0; j < history.Length; j++)
                if (history[j] != 0 && mapped[j] != 0) { bag.Add(b); item.Add(mapped[j]); }
            int n = item.Count - start;
            for (int j = 0; j < n; j++) share.Add(1f / n);
            has[b] = n > 0;
        }
        var weight = item_embedding.weight!;
        var hasT = torch.tensor(has, device: Device);
        if (item.Count == 0) return (torch.zeros(new long[] { rows.Count, EmbeddingDim }, weight.dtype, Device), hasT);
        // The means as one sparse [B, items] x [items, k] product: memory grows with B x k, not with the history lengths.
        var indices = torch.stack(new[] { torch.tensor(bag.ToArray()), torch.tensor(item.ToArray()) });               // [2, N]
        var averaging = torch.sparse_coo_tensor(indices, torch.tensor(share.ToArray()), new long[] { rows.Count, weight.shape[0] })
            .to(weight.dtype).to(Device);                                                                          // [B, items]
        return (averaging.matmul(weight), hasT);                                                                   // [B, k]
    }

    /// <summary>
    /// Fits the history map by ridge regression over the training users: each user's mean liked-item embedding in
    /// <paramref name="train"/> against their own embedding, with penalty <see cref="CoraDefaults.MfHistoryRidge"/> times the mean
    /// diagonal of the means' Gram matrix (so the fit does not depend on the embeddings' scale); sets <see cref="History"/>. With <see cref="UserHistory.None"/>, or no user with a liked item, the history stays unread.
    /// </summary>
    public void FitHistoryMap(IReadOnlyList<Interaction> train, UserHistory history)
    {
        if (!Enum.IsDefined(history)) throw new ArgumentOutOfRangeException(nameof(history), history, "not a UserHistory value.");
        _historyMap?.Dispose(); _historyMap = null; History = UserHistory.None;
        if (history == UserHistory.None) return;
        var liked = train.Where(r => r.Label && Users.Contains(r.UserId) && Items.Contains(r.ItemId)).GroupBy(r => r.UserId).ToList();
        if (liked.Count == 0) return;
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var pseudo = liked.Select(g => new Interaction(g.Key, 0, true, 0, true, g.Select(r => r.ItemId).ToArray())).ToList();
        var (h, _) = HistoryMeans(pseudo);                                                              // [U, k]
        h = h.to(ScalarType.Float64);
        var u = user_embedding.call(torch.tensor(Users.Map(liked.Select(g => (long)g.Key).ToArray()), device: Device)).to(ScalarType.Float64);   // [U, k]
        var gram = h.T.matmul(h);                                                                       // [k, k]
        double penalty = CoraDefaults.MfHistoryRidge * gram.trace().item<double>() / EmbeddingDim;         // scale-free: x mean diagonal
        var map = torch.linalg.solve(gram + penalty * torch.eye(EmbeddingDim, dtype: ScalarType.Float64, device: Device), h.T.matmul(u));   // [k, k]
        _historyMap = map.to(user_embedding.weight!.dtype).MoveToOuterDisposeScope();
        History = history;
    }
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
        var history = o.HistoryFor(CollaborativeKind.Mf);
        CollaborativeTraining.Run(mf, mf, train, valid, o, CollaborativeKind.Mf, log, ct, afterStep: mf.ZeroUnknownRows);
        mf.FitHistoryMap(train, history);
        return mf;
    }

    /// <summary>State for saving: embeddings and the id of each row.</summary>
    public Dictionary<string, Tensor> ExportState()
    {
        var state = new Dictionary<string, Tensor>
        {
            ["user_embedding.weight"] = user_embedding.weight!,
            ["item_embedding.weight"] = item_embedding.weight!,
            ["user_ids"] = torch.tensor(Users.Ids.ToArray()),
            ["item_ids"] = torch.tensor(Items.Ids.ToArray()),
        };
        if (History != UserHistory.None && _historyMap is not null)
        {
            state[HistoryModeKey] = torch.tensor(new long[] { (long)History });
            state[HistoryMapKey] = _historyMap;
        }
        return state;
    }

    private const string HistoryModeKey = "history_mode", HistoryMapKey = "history_map";

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
        Tensor mode;
        try { mode = read(HistoryModeKey); }
        catch (KeyNotFoundException) { return mf; }                                 // saved without a history map: None
        var m = mode.numel() == 1 && mode.dtype == ScalarType.Int64 ? (UserHistory)mode.item<long>() : (UserHistory)(-1);
        if (m is not (UserHistory.Cold or UserHistory.Blend))
            throw new InvalidDataException($"MF state: '{HistoryModeKey}' must hold one int64 of {(int)UserHistory.Cold} (cold) or {(int)UserHistory.Blend} (blend).");
        var map = read(HistoryMapKey);
        if (map.dim() != 2 || map.shape[0] != u.shape[1] || map.shape[1] != u.shape[1])
            throw new InvalidDataException($"MF state: '{HistoryMapKey}' is [{string.Join(",", map.shape)}], expected [{u.shape[1]},{u.shape[1]}].");
        mf._historyMap = map.to(u.dtype).clone();
        mf.History = m;
        return mf;
    }
}
